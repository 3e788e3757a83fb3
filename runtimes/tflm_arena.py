"""TFLite Micro's tensor arena, tried only in child processes: a too-small arena can kill the
process (a segfault, not an exception), so every try runs in a child process through
:func:`edgeport.children.run_job` (job kind ``tflm``; its child side is :func:`tflm_job`).

The parent's side lives here: :func:`measure_arena` / :func:`arena_use` (what the model really
needs), :func:`arena_fits`, :func:`allocations`, :func:`predict_isolated`; arrays travel in the
job's folder (``inputs.npz`` in, ``outputs.npz`` out). numpy only.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import LoadError

DIST = "tflite-micro"
#: What TFLM's recording allocator prints (to stderr) after ``print_allocations()``.
ARENA_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
#: First arena tried when measuring: the interpreter's own heuristic (10 x the model), at least this.
MIN_PROBE_ARENA = 256 << 10
#: Largest arena tried (no microcontroller has more RAM).
MAX_PROBE_ARENA = 256 << 20
ARENA_ALIGNMENT = 16
CHILD_TIMEOUT_S = 120.0


def parse_allocations(text: str) -> dict[str, int]:
    """``total``/``head``/``tail`` bytes from the recording allocator's printout."""
    return {m.group(1): int(m.group(2)) for m in ARENA_LINE.finditer(text)}


# -- the job protocol ---------------------------------------------------------------------------

def save_inputs(path: Path, x: Any) -> None:
    arrays = {"x": x} if isinstance(x, np.ndarray) else {f"x/{k}": v for k, v in x.items()}
    np.savez(path, **arrays)


def load_inputs(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as z:
        if "x" in z.files:
            return z["x"]
        return {k[2:]: z[k] for k in z.files}


def tflm_job(job: dict[str, Any]) -> dict[str, Any]:
    """Child side (``edgeport.worker`` kind ``tflm``): load the model with the job's arena and run
    it once (``measure`` also returns the recording allocator's figures; ``predict`` writes
    ``outputs.npz`` into the job's folder)."""
    from edgeport.runtimes import tflm

    if job["mode"] == "predict":
        return tflm._predict(job, Path(job["dir"]))
    out: dict[str, Any] = {}
    printed = tflm._capture_fd2(lambda: out.update(tflm._invoke_once(job)))
    return {**out, "allocations": parse_allocations(printed)}


def _spawn(mode: str, model: bytes | Path, *, arena_size: int, x: Any = None,
           timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run ``mode`` (measure, fits, predict) in a child process (edgeport.children.run_job); returns
    the child's result, or ``{"ok": False, "crashed": bool, "error": ..., "stderr": [...]}``."""
    from edgeport.children import run_job

    with tempfile.TemporaryDirectory(prefix="edgeport-tflm-") as tmp:
        job = Path(tmp)
        model_path = Path(model) if isinstance(model, Path) else job / "model.tflite"
        if not isinstance(model, Path):
            model_path.write_bytes(model)
        if x is not None:
            save_inputs(job / "inputs.npz", x)
        result = run_job({"kind": "call", "target": "edgeport.runtimes.tflm_arena:tflm_job", "mode": mode,
                          "model": str(model_path), "arena_size": int(arena_size), "dir": str(job)},
                         timeout=timeout, label=f"the TFLite Micro {mode} child process")
        if not result.get("ok"):
            return {"ok": False, "crashed": result.get("error_type") == "ChildCrashed",
                    "error": result.get("error", "failed"), "stderr": result.get("stderr") or []}
        if mode == "predict":
            with np.load(job / "outputs.npz", allow_pickle=False) as z:
                result["outputs"] = [z[f"y{j}"] for j in range(len(z.files))]
        return result


# -- what the parent asks -------------------------------------------------------------------------

def arena_fits(model_bytes: bytes, arena_size: int) -> bool:
    """Whether the model loads and runs one inference with exactly ``arena_size`` bytes (in a
    child process: a too-small arena may crash rather than fail)."""
    return bool(_spawn("fits", model_bytes, arena_size=arena_size).get("ok"))


def allocations(model_bytes: bytes, *, where: str = "the model") -> dict[str, int]:
    """TFLM's recorded arena use (``total``, ``head``: planned activations and scratch, ``tail``:
    persistent structures) after one inference, from a child process that loads the model with
    a generous arena (the interpreter's 10 x model size, at least 256 KiB, x4 until it loads)."""
    arena = max(10 * len(model_bytes), MIN_PROBE_ARENA)
    while True:
        result = _spawn("measure", model_bytes, arena_size=arena)
        if result.get("ok"):
            break
        if arena >= MAX_PROBE_ARENA:
            detail = "; ".join(result.get("stderr") or []) or result.get("error")
            raise LoadError(f"{where}: TFLite Micro cannot load and run it even with a {arena >> 20} MiB arena: "
                            f"{result.get('error')} ({detail})")
        arena = min(arena * 4, MAX_PROBE_ARENA)
    found = result.get("allocations") or {}
    if "total" not in found:
        raise LoadError(f"{where}: TFLite Micro printed no 'Arena allocation total' line (print_allocations); "
                        f"is {DIST} a version edgeport knows?")
    return {**found, "probe_arena": arena}


def _smallest_above(model_bytes: bytes, total: int, limit: int) -> int:
    """The smallest arena above ``total`` (which fails) that runs: grow until a size works (or
    ``limit``), then bisect down to the alignment."""
    lo, step = total, 256
    while True:
        hi = min(total + step, limit)
        if hi >= limit or arena_fits(model_bytes, hi):
            break
        lo, step = hi, step * 2
    while hi - lo > ARENA_ALIGNMENT:
        mid = (lo + hi) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT
        if mid <= lo:
            break
        lo, hi = (lo, mid) if arena_fits(model_bytes, mid) else (mid, hi)
    return hi


def arena_use(model_bytes: bytes, *, where: str = "the model") -> dict[str, int]:
    """The tensor arena the model really needs in TFLite Micro, with its parts: ``arena`` (bytes
    to give the interpreter), ``total``/``head``/``tail`` as the recording allocator prints them
    after one inference (head: the planned activation and scratch memory; tail: persistent
    structures). ``arena`` is the total, confirmed by running with exactly that many bytes, or,
    should that fail, the smallest size above it that runs (searched upward, then bisected to 16
    bytes; every try in a child process): the total can miss a few hundred bytes (seen on a
    two-input model: 2,176 recorded, 2,608 needed).

    Measured on this 64-bit host with TFLM's reference kernels: the tail's pointer-holding
    structures are smaller on a 32-bit microcontroller; optimized kernels (CMSIS-NN, ESP-NN) may
    ask for scratch buffers of other sizes."""
    found = allocations(model_bytes, where=where)
    total = found["total"]
    arena = total
    if not arena_fits(model_bytes, total):  # seen with two inputs: the total misses a few hundred bytes
        arena = _smallest_above(model_bytes, total, found["probe_arena"])
    return {"arena": arena, "total": total, "head": found.get("head", 0), "tail": found.get("tail", 0)}


def measure_arena(model_bytes: bytes, *, where: str = "the model") -> int:
    """The tensor arena (bytes) the model really needs in TFLite Micro (see :func:`arena_use`)."""
    return arena_use(model_bytes, where=where)["arena"]


def predict_isolated(path: str | Path, x: Any, *, arena_size: int,
                     timeout: float = 600.0) -> tuple[list[np.ndarray], str]:
    """(float outputs, engine) of ``TFLMSession(path, arena_size=...).predict(x)`` run in a child
    process, so that a crash inside TFLite Micro cannot take the caller down."""
    result = _spawn("predict", Path(path), arena_size=arena_size, x=x, timeout=timeout)
    if not result.get("ok"):
        detail = "; ".join(result.get("stderr") or [])
        raise LoadError(f"{path}: TFLite Micro failed to run it with a {arena_size} byte arena: "
                        f"{result.get('error')}" + (f" ({detail})" if detail else ""))
    return result["outputs"], result["engine"]
