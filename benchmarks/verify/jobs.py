"""Run one artifact on the verification inputs in a child process (``edgeport.worker``).

The parent never loads an engine for verification itself: a crash inside TensorFlow, LiteRT or
ONNX Runtime on one artifact fails that row and nothing else. Inputs and outputs travel as .npz
files; outputs are keyed by the artifact's output names (``output_0``, ... or the model's own).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.children import raise_for, run_job

BATCH = 32  # the batch `edgeport bench` measures throughput at: verification runs at that rate
SINGLE = "x"


def save_inputs(x: np.ndarray | dict[str, np.ndarray], path: Path) -> Path:
    """One array (``x``) or one per input name (``x/NAME``) as an uncompressed .npz."""
    arrays = {SINGLE: x} if isinstance(x, np.ndarray) else {f"{SINGLE}/{k}": v for k, v in x.items()}
    np.savez(path, **arrays)
    return path


def load_inputs(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        if SINGLE in z.files:
            return z[SINGLE]
        return {k.split("/", 1)[1]: z[k] for k in z.files}


def count(x: np.ndarray | dict[str, np.ndarray]) -> int:
    """Rows of ``x``; one feed given whole (inputs with no shared batch axis) is one."""
    from edgeport.training.testset import is_whole

    if is_whole(x):
        return 1
    return len(x) if isinstance(x, np.ndarray) else len(next(iter(x.values())))


def _rows(x: np.ndarray | dict[str, np.ndarray], start: int, stop: int):
    return x[start:stop] if isinstance(x, np.ndarray) else {k: v[start:stop] for k, v in x.items()}


def predict_all(session, x: np.ndarray | dict[str, np.ndarray], *, batch: int = BATCH) -> dict[str, np.ndarray]:
    """Every output of ``session`` for every input row, by output name."""
    from edgeport.training.testset import is_whole

    names = session.output_keys
    if is_whole(x):  # one feed given whole (a stateful model's step): its outputs are one row
        out = session.predict(x)
        outs = out if isinstance(out, list) else [out]
        return {n: np.asarray(y, dtype=np.float32)[None] for n, y in zip(names, outs)}
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    n = count(x)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        out = session.batch_major(session.predict(_rows(x, start, stop)), stop - start)  # rows on axis 0
        for name, y in zip(names, out):
            parts[name].append(np.asarray(y, dtype=np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}


def precision_hint(session) -> tuple[str, str]:
    """The precision class a bare artifact's own tensors show, and how it was read."""
    from edgeport.export.registry import read_precision

    precision, how = read_precision(session.tensor_storage())
    return precision.value, how


def run_outputs(job: dict[str, Any]) -> dict[str, Any]:
    """Child side: load the artifact, run every input, save the outputs; time the inference alone."""
    from edgeport.runtimes import load

    t0 = time.perf_counter()
    session = load(job["path"], runtime=job["runtime"], threads=job.get("threads"), probe=False,
                   **job.get("options", {}))
    load_s = time.perf_counter() - t0
    x = load_inputs(job["inputs"])
    t1 = time.perf_counter()
    outputs = predict_all(session, x, batch=int(job.get("batch", BATCH)))
    predict_s = time.perf_counter() - t1
    np.savez(job["outputs"], **outputs)
    n = count(x)
    hint, read_as = precision_hint(session)
    return {"engine": session.engine, "notes": list(session.notes), "precision_hint": hint, "precision_read": read_as,
            "load_s": load_s, "predict_s": predict_s,
            "images_per_s": n / predict_s if predict_s > 0 else None, "n": n,
            "threads": job.get("threads"), "batch": int(job.get("batch", BATCH))}


def artifact_outputs(path: Path, runtime: str, inputs: Path, work: Path, *, threads: int | None,
                     timeout: float, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Parent side: run ``path`` on ``inputs`` in a child; (outputs by name, the child's report).
    A crash, hang or error in the child is an EdgeportError naming the file."""
    out = work / "outputs.npz"
    result = run_job({"kind": "outputs", "path": str(path), "runtime": runtime, "inputs": str(inputs),
                      "outputs": str(out), "threads": threads, "options": options or {}},
                     threads=threads, timeout=timeout)
    raise_for(result, f"{path} on {runtime}")
    with np.load(out, allow_pickle=False) as z:
        outputs = {k: z[k] for k in z.files}
    out.unlink()
    return outputs, result
