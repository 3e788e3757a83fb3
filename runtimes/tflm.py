"""TensorFlow Lite for Microcontrollers (TFLM) runtime: the ``tflite_micro`` Python interpreter,
the same C++ kernels and memory planner firmware links (numpy and tflite_micro only, imported when
first used; ``pip install tflite-micro``, Linux x86_64 wheels only).

TFLM models have a fixed batch (a microcontroller model is batch 1): a batch of N is fed row by
row. Quantized inputs and outputs are handled by the Session base, as for LiteRT.

This module holds :func:`import_engine`, :class:`TFLMSession` and what a child process does for
one arena job (``_predict``, ``_invoke_once``, run by ``tflm_arena.tflm_job``). A tensor arena that
is too small can kill the process, so everything that tries an arena size runs in a child
(:mod:`edgeport.runtimes.tflm_arena`): :func:`measure_arena` (what the model really needs),
:func:`arena_fits`, :func:`predict_isolated`. :func:`micro_op_resolver`
(:mod:`edgeport.runtimes.tflm_resolver`) writes the C++ that registers exactly the model's ops.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import DeviceUnavailable, LoadError
from edgeport.runtimes.base import Session, order_inputs, spec_shape
from edgeport.runtimes.artifact_info import embedded, input_order
from edgeport.runtimes.tflm_arena import (DIST, allocations, arena_fits, arena_use, load_inputs, measure_arena,
                                          parse_allocations, predict_isolated)
from edgeport.runtimes.tflm_resolver import micro_op_resolver, resolver_method
from edgeport.types import TensorSpec

__all__ = ["DIST", "INSTALL_HINT", "TFLMSession", "allocations", "arena_fits", "arena_use", "import_engine",
           "measure_arena", "micro_op_resolver", "predict_isolated", "resolver_method"]

INSTALL_HINT = "pip install tflite-micro==0.dev20261023182759 (pre-release wheels, Linux x86_64 only)"


def import_engine() -> tuple[Any, str]:
    """(``tflite_micro.runtime``, "tflite_micro VERSION"); ImportError with the install line."""
    try:
        import tflite_micro
        from tflite_micro import runtime
    except Exception as exc:  # noqa: BLE001 - ImportError, or a wheel built for another platform
        raise ImportError(f"the tflm runtime needs tflite-micro ({INSTALL_HINT}): "
                          f"{type(exc).__name__}: {exc}") from None
    return runtime, f"tflite_micro {getattr(tflite_micro, '__version__', '?')}"


# -- the session ------------------------------------------------------------------------------

def _io_names(data: bytes) -> tuple[list[str], list[str]]:
    """Names of subgraph 0's inputs and outputs in TFLM's index order: the signature's names
    (``image``, ``output_0``) when the model has one signature, else the tensor names."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.Model.GetRootAsModel(bytearray(data), 0)
    graph = model.Subgraphs(0)
    sig: dict[int, str] = {}
    if model.SignatureDefsLength() == 1:
        s = model.SignatureDefs(0)
        for k in range(s.InputsLength()):
            sig[s.Inputs(k).TensorIndex()] = s.Inputs(k).Name().decode()
        for k in range(s.OutputsLength()):
            sig[s.Outputs(k).TensorIndex()] = s.Outputs(k).Name().decode()

    def name(i: int) -> str:
        return sig.get(i) or graph.Tensors(i).Name().decode()

    return ([name(graph.Inputs(k)) for k in range(graph.InputsLength())],
            [name(graph.Outputs(k)) for k in range(graph.OutputsLength())])


def _spec(details: dict[str, Any], name: str) -> TensorSpec:
    q = details.get("quantization_parameters") or {}
    scales, zeros = q.get("scales", ()), q.get("zero_points", ())
    scale = float(scales[0]) if len(scales) == 1 and float(scales[0]) != 0.0 else None
    return TensorSpec(name, spec_shape(details["shape"]), np.dtype(details["dtype"]).name, scale,
                      int(zeros[0]) if scale is not None else None)


class TFLMSession(Session):
    """A .tflite model in the TensorFlow Lite Micro interpreter (fixed batch, fed row by row).

    Options: ``arena_size`` (tensor arena bytes; default: :func:`measure_arena` in a child
    process). TFLM runs on one thread: ``threads`` other than 1 is noted, not used.
    ``self.engine`` is "tflite_micro VERSION".
    """

    runtime = "tflm"
    probe_by_default = True  # a bad file or a small arena crashes the process: try it in a child

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
                 arena_size: int | None = None, allow_nonfinite: bool = False):
        super().__init__(path, threads=threads, device=device, allow_nonfinite=allow_nonfinite)
        if device != "cpu":
            raise DeviceUnavailable(f"{self.path}: the tflm runtime runs on the CPU only (device={device!r})")
        try:
            runtime, self.engine = import_engine()
        except ImportError as exc:
            raise LoadError(f"{self.path}: {exc}") from None
        if threads not in (None, 1):
            self.notes.append(f"tflm: TFLite Micro runs on one thread; threads={threads} not used")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise LoadError(f"{self.path}: unreadable ({exc.strerror or exc})") from None
        self.arena_size = int(arena_size) if arena_size else measure_arena(data, where=str(self.path))
        try:
            self._interp = runtime.Interpreter.from_bytes(data, arena_size=self.arena_size)
            in_names, out_names = _io_names(data)
            specs = [_spec(self._interp.get_input_details(i), n) for i, n in enumerate(in_names)]
            self.outputs = [_spec(self._interp.get_output_details(i), n) for i, n in enumerate(out_names)]
        except (RuntimeError, ValueError, IndexError) as exc:
            raise LoadError(f"{self.path}: {self.engine} could not load it with a {self.arena_size} byte "
                            f"arena: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}") from None
        order = input_order(embedded(self.path)) if len(specs) > 1 else None
        self.inputs = order_inputs(specs, order)
        self._in_index = [specs.index(s) for s in self.inputs]
        self._batch = int(self.inputs[0].shape[0] or 1) if self.inputs else 1
        self._finish_setup()

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        n, step = feeds[0].shape[0], self._batch
        parts: list[list[np.ndarray]] = [[] for _ in self.outputs]
        interp = self._interp
        for start in range(0, n, step):
            chunk = [f[start:start + step] for f in feeds]
            short = chunk[0].shape[0]
            if short < step:  # pad a short last chunk with copies of its first row
                chunk = [np.concatenate([c] + [c[:1]] * (step - short)) for c in chunk]
            for index, c in zip(self._in_index, chunk):
                interp.set_input(np.ascontiguousarray(c), index)
            interp.invoke()
            for j, part in enumerate(parts):
                part.append(interp.get_output(j)[:short])  # a copy: the arena is reused
        return [np.concatenate(p) for p in parts]

    def allocations(self) -> dict[str, int]:
        """The arena this interpreter uses (after one inference): total/head/tail bytes. Printed by
        TFLM's recording allocator on stderr; read back here through the file descriptor."""
        return parse_allocations(_capture_fd2(self._interp.print_allocations))

    def close(self) -> None:
        self._interp = None


def _capture_fd2(fn: Any) -> str:
    """Run ``fn()`` with file descriptor 2 (C++ stderr) sent to a temporary file; return its text."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 2)
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("utf-8", "replace")


# -- the child side of edgeport.runtimes.tflm_arena's jobs (tflm_arena.tflm_job) -------------

def _predict(job: dict[str, Any], job_dir: Path) -> dict[str, Any]:
    session = TFLMSession(job["model"], arena_size=job["arena_size"])
    outputs = session.predict(load_inputs(job_dir / "inputs.npz"))
    outputs = outputs if isinstance(outputs, list) else [outputs]
    np.savez(job_dir / "outputs.npz", **{f"y{j}": y for j, y in enumerate(outputs)})
    return {"engine": session.engine, "arena_size": session.arena_size}


def _invoke_once(job: dict[str, Any]) -> dict[str, Any]:
    """One inference on zeros, what firmware does after AllocateTensors; ``measure`` prints the
    recording allocator's figures on fd 2 (tflm_arena.tflm_job captures them)."""
    runtime, engine = import_engine()
    interp = runtime.Interpreter.from_bytes(Path(job["model"]).read_bytes(), arena_size=job["arena_size"])
    k = 0
    while True:
        try:
            d = interp.get_input_details(k)
        except IndexError:
            break
        interp.set_input(np.zeros(tuple(d["shape"]), d["dtype"]), k)
        k += 1
    interp.invoke()
    if job["mode"] == "measure":
        sys.stderr.flush()
        interp.print_allocations()
    return {"engine": engine, "arena_size": job["arena_size"]}
