"""The microcontroller model's proof: it runs in TFLite Micro (its Python interpreter, the same C++
kernels and memory planner firmware links, in a child process, with exactly the arena measured)
and in LiteRT without default delegates on real test inputs; every output must be identical or at
most ``MAX_STEPS`` quantization steps apart. Top-1 agreement with the source model is reported for
information.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError
from edgeport.export.targets.common import take_rows

#: TFLite Micro against LiteRT (no delegates): at most this many quantization steps apart.
MAX_STEPS = 1


def _as_list(y: Any) -> list[np.ndarray]:
    return list(y) if isinstance(y, list) else [y]


def _top1(y: np.ndarray) -> np.ndarray:
    y = y.reshape(len(y), -1)
    return y.argmax(1) if y.shape[1] > 1 else (y[:, 0] > 0.5).astype(np.int64)


def _litert_rows(path: Path, x: Any, n: int) -> tuple[list[np.ndarray], Any]:
    """LiteRT without default delegates (TFLite's reference/optimized builtin kernels, no
    XNNPACK: its int8 kernels round differently from TFLite Micro's), one row at a time."""
    from edgeport.runtimes.registry import load

    session = load(path, runtime="litert", xnnpack=False, threads=1)
    rows = [_as_list(session.predict(take_rows(x, np.arange(i, i + 1)))) for i in range(n)]
    return [np.concatenate([r[j] for r in rows]) for j in range(len(session.outputs))], session


def _compare(spec: Any, m: np.ndarray, r: np.ndarray, keras: np.ndarray | None, y: np.ndarray | None,
             task: str, single: bool) -> tuple[dict[str, Any], np.ndarray]:
    """One output of TFLite Micro (``m``) against LiteRT (``r``), rows flat: its figures, and which
    rows are identical."""
    steps = np.rint(np.abs(m.astype(np.float64) - r) / spec.scale).astype(np.int64)
    worst = int(np.unravel_index(steps.argmax(), steps.shape)[0]) if steps.max() else None
    out: dict[str, Any] = {"dtype": spec.dtype, "scale": spec.scale, "zero_point": spec.zero_point,
                           "max_steps": int(steps.max()), "worst_input": worst,
                           "identical_values": float((steps == 0).mean()),
                           "inputs_differing": int((steps > 0).any(1).sum())}
    if task == "classification":
        out["top1_agreement_litert"] = float((_top1(m) == _top1(r)).mean())
        if keras is not None:
            out["top1_agreement_keras"] = float((_top1(m) == _top1(keras)).mean())
        if y is not None and single:
            out["accuracy"] = {"tflm": float((_top1(m) == y).mean()), "litert": float((_top1(r) == y).mean()),
                               "keras": float((_top1(keras) == y).mean()) if keras is not None else None}
    return out, (steps == 0).all(1)


def prove(model_path: Path, source_path: Path, x: Any, y: np.ndarray | None, *, arena_size: int,
          task: str = "classification") -> dict[str, Any]:
    """Run the batch-1 model in TFLite Micro (child process, ``arena_size`` bytes) and LiteRT (no
    delegates) on ``x``, and the source model for top-1 agreement; the figures, and ``ok``."""
    from edgeport.runtimes import tflm
    from edgeport.runtimes.registry import load

    n = len(x) if isinstance(x, np.ndarray) else len(next(iter(x.values())))
    t0 = time.perf_counter()
    micro, micro_engine = tflm.predict_isolated(model_path, x, arena_size=arena_size)
    t_micro = time.perf_counter() - t0
    lite, session = _litert_rows(model_path, x, n)
    specs = session.outputs
    # no child probe: convert_batch1 has loaded this very source in this process already
    reference = load(source_path, probe=False)
    keras = dict(zip([s.name for s in reference.outputs], _as_list(reference.predict(x))))
    outputs, identical_rows = {}, np.ones(n, bool)
    for j, spec in enumerate(specs):
        if not spec.quantized:
            raise EdgeportError(f"{model_path}: output {spec.name!r} is {spec.dtype}, not quantized: "
                                "not a full-integer model")
        outputs[spec.name], identical = _compare(spec, micro[j].reshape(n, -1), lite[j].reshape(n, -1),
                                                 keras.get(spec.name), y, task, len(specs) == 1)
        identical_rows &= identical
    max_steps = max(o["max_steps"] for o in outputs.values())
    agree = [o["top1_agreement_keras"] for o in outputs.values() if "top1_agreement_keras" in o]
    return {"ok": max_steps <= MAX_STEPS, "n": n, "max_steps": max_steps, "allowed_steps": MAX_STEPS,
            "identical_fraction": float(identical_rows.mean()),
            "top1_agreement_keras": min(agree) if agree else None,
            "arena_bytes": arena_size, "tflm": micro_engine, "litert": session.engine,
            "litert_op_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
            "io": {"inputs": [s.to_dict() for s in session.inputs], "outputs": [s.to_dict() for s in specs]},
            "reference": f"{reference.engine}: {source_path.name}", "outputs": outputs,
            "tflm_seconds": round(t_micro, 2)}


def proof_error(name: str, model_file: str, proof: dict[str, Any], idx: np.ndarray) -> EdgeportError:
    """The refusal of a failed proof: which outputs are how far apart, at which test input."""
    bad = [(k, o) for k, o in proof["outputs"].items() if o["max_steps"] > MAX_STEPS]
    parts = [f"output {k!r} is up to {o['max_steps']} quantization steps apart (at test input #"
             f"{idx[o['worst_input']]}; {o['inputs_differing']} of {proof['n']} inputs differ)" for k, o in bad]
    return EdgeportError(f"{name}: TFLite Micro and LiteRT (no delegates) disagree on {model_file}: "
                         f"{'; '.join(parts)}; allowed {MAX_STEPS} step: the microcontroller bundle is not made")
