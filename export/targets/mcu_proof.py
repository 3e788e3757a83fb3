"""The microcontroller model's proof, through `edgeport verify`'s compare and gates
(:mod:`edgeport.benchmarks.verify.proof`), two verify rows on real test inputs:

- TFLite Micro (its Python interpreter: the C++ kernels and memory planner firmware links, in a
  child process, with exactly the arena measured) against LiteRT without default delegates, one
  input at a time: every output at most ``MAX_STEPS`` quantization steps apart (a fixed bound on
  the difference, per output: ``MAX_STEPS`` + 1/2 of its scale);
- the batch-1 model in LiteRT against the source model, under the gate verify holds the format to.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.verify import proof
from edgeport.benchmarks.verify.figures import output_kind
from edgeport.benchmarks.verify.gates import Gate, GateTable
from edgeport.errors import EdgeportError
from edgeport.export.registry import precision_of
from edgeport.export.targets.common import take_rows

#: TFLite Micro against LiteRT (no delegates): at most this many quantization steps apart.
MAX_STEPS = 1
ENGINES = "TFLite Micro and LiteRT (no delegates)"


def _as_list(y: Any) -> list[np.ndarray]:
    return list(y) if isinstance(y, list) else [y]


def _litert_rows(path: Path, x: Any, n: int) -> tuple[list[np.ndarray], Any]:
    """LiteRT without default delegates (TFLite's reference/optimized builtin kernels, no
    XNNPACK: its int8 kernels round differently from TFLite Micro's), one row at a time."""
    from edgeport.runtimes.registry import load

    session = load(path, xnnpack=False, threads=1)  # a .tflite's default runtime
    rows = [_as_list(session.predict(take_rows(x, np.arange(i, i + 1)))) for i in range(n)]
    return [np.concatenate([r[j] for r in rows]) for j in range(len(session.outputs))], session


def step_gates(specs: list[Any]) -> dict[str, Gate]:
    """Per output: a fixed bound of ``MAX_STEPS`` quantization steps (and half a step of rounding)."""
    return {s.name: Gate(max_abs_diff=(MAX_STEPS + 0.5) * s.scale) for s in specs}


def steps(row: Any, specs: list[Any]) -> dict[str, int]:
    """The largest difference of each output of a TFLite Micro row, in quantization steps."""
    return {s.name: int(np.rint(row.outputs[s.name]["max_abs_diff"] / s.scale)) for s in specs
            if s.name in row.outputs and np.isfinite(row.outputs[s.name]["max_abs_diff"])}


def prove(fmt: str, model_path: Path, source_path: Path, x: Any, y: np.ndarray | None, *, arena_size: int,
          gates: GateTable, task: str = "classification") -> dict[str, Any]:
    """Run the batch-1 model in TFLite Micro (child process, ``arena_size`` bytes) and LiteRT (no
    delegates) on ``x``, and the source model; the two verify rows, their summary and ``ok``."""
    from edgeport.runtimes import tflm
    from edgeport.runtimes.registry import load

    n = len(x) if isinstance(x, np.ndarray) else len(next(iter(x.values())))
    t0 = time.perf_counter()
    micro, micro_engine = tflm.predict_isolated(model_path, x, arena_size=arena_size)
    t_micro = time.perf_counter() - t0
    lite, session = _litert_rows(model_path, x, n)
    specs = session.outputs
    if bad := [s.name for s in specs if not s.quantized]:
        raise EdgeportError(f"{model_path}: outputs {bad} are not quantized: not a full-integer model")
    lite_by = {s.name: lite[j].astype(np.float64) for j, s in enumerate(specs)}
    micro_by = {s.name: np.asarray(micro[j], np.float64) for j, s in enumerate(specs)}
    # no child probe: the batch-1 conversion has loaded this very source in this process already
    reference = load(source_path, probe=False)
    keras = [np.asarray(v, np.float64) for v in _as_list(reference.predict(x))]
    names = [s.name for s in reference.outputs]
    source = dict(zip(names, keras)) if set(names) == set(lite_by) or len(keras) > 1 else {specs[0].name: keras[0]}
    kinds = {k: output_kind(v, task) for k, v in source.items()}  # a dequantized output's sums are not exactly 1
    common = {"precision": precision_of(fmt).value, "y": y, "kinds": kinds}
    rows = [proof.prove(fmt, tflm.TFLMSession.runtime, model_path.name, lite_by, micro_by, gate=step_gates(specs),
                        against=f"LiteRT (no delegates) {session.engine}", engine=micro_engine, **common),
            proof.prove(fmt, session.runtime, model_path.name, source, lite_by, gate=gates.for_format(fmt),
                        against=f"{reference.engine}: {source_path.name}", engine=session.engine, **common)]
    identical = np.all([np.all(micro_by[k].reshape(n, -1) == lite_by[k].reshape(n, -1), axis=1) for k in lite_by],
                       axis=0)
    worst = steps(rows[0], specs)
    return {"ok": all(r.status == "pass" for r in rows), "n": n, "max_steps": max(worst.values(), default=0),
            "allowed_steps": MAX_STEPS, "identical_fraction": float(identical.mean()),
            "top1_agreement_keras": rows[1].figures.get("agreement"), "arena_bytes": arena_size,
            "micro_engine": micro_engine, "litert_engine": session.engine,
            "litert_op_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
            "io": {"inputs": [s.to_dict() for s in session.inputs], "outputs": [s.to_dict() for s in specs]},
            "reference": f"{reference.engine}: {source_path.name}", "results": [r.to_dict() for r in rows],
            "rows": rows, "steps": worst, "tflm_seconds": round(t_micro, 2)}


def proof_error(name: str, model_file: str, result: dict[str, Any]) -> EdgeportError:
    """The refusal of a failed proof: which outputs are how many steps apart, and every gate failure."""
    far = [f"output {k!r} is up to {s} quantization steps apart" for k, s in result["steps"].items() if s > MAX_STEPS]
    head = (f"{ENGINES} disagree on {model_file}: {'; '.join(far)} (allowed {MAX_STEPS} step)" if far
            else f"{model_file} fails its gates")
    return EdgeportError(f"{name}: {head}: the microcontroller bundle is not made\n"
                         + "\n".join(proof.failure_lines(result["rows"])))
