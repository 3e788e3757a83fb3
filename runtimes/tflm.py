"""TensorFlow Lite for Microcontrollers (TFLM) runtime: the ``tflite_micro`` Python interpreter,
the same C++ kernels and memory planner firmware links (numpy and tflite_micro only, imported when
first used; ``pip install tflite-micro``, Linux x86_64 wheels only).

TFLM models have a fixed batch (a microcontroller model is batch 1): a batch of N is fed row by
row. Quantized inputs and outputs are handled by the Session base, as for LiteRT.

A tensor arena that is too small can kill the process (a segfault, not an exception), so
everything that tries an arena size runs in a child process (``python -m edgeport.runtimes.tflm``):
:func:`measure_arena` (what the model really needs), :func:`arena_fits`, :func:`predict_isolated`.
:func:`micro_op_resolver` writes the C++ that registers exactly the model's ops.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeport.errors import DeviceUnavailable, EdgeportError, LoadError
from edgeport.runtimes.base import Session, order_inputs, spec_shape
from edgeport.runtimes.metadata import embedded, input_order
from edgeport.types import TensorSpec

DIST = "tflite-micro"
INSTALL_HINT = "pip install tflite-micro==0.dev20261023182759 (pre-release wheels, Linux x86_64 only)"
#: What TFLM's recording allocator prints (to stderr) after ``print_allocations()``.
ARENA_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
#: First arena tried when measuring: the interpreter's own heuristic (10 x the model), at least this.
MIN_PROBE_ARENA = 256 << 10
#: Largest arena tried (no microcontroller has more RAM).
MAX_PROBE_ARENA = 256 << 20
ARENA_ALIGNMENT = 16
CHILD_TIMEOUT_S = 120.0


def import_engine() -> tuple[Any, str]:
    """(``tflite_micro.runtime``, "tflite_micro VERSION"); ImportError with the install line."""
    try:
        import tflite_micro
        from tflite_micro import runtime
    except Exception as exc:  # ImportError, or a wheel built for another platform
        raise ImportError(f"the tflm runtime needs tflite-micro ({INSTALL_HINT}): "
                          f"{type(exc).__name__}: {exc}") from None
    return runtime, f"tflite_micro {getattr(tflite_micro, '__version__', '?')}"


# -- the op resolver --------------------------------------------------------------------------

#: Builtin ops whose MicroMutableOpResolver method the naming rule below does not produce.
RESOLVER_EXCEPTIONS = {"CUMSUM": "AddCumSum", "PADV2": "AddPadV2"}


def resolver_method(op: str) -> str:
    """The ``tflite::MicroMutableOpResolver`` method that registers builtin ``op``:
    ``CONV_2D`` -> ``AddConv2D``, ``FULLY_CONNECTED`` -> ``AddFullyConnected`` (TFLM's own
    generator rule: split on ``_``, capitalise alphabetic parts, keep digit-led parts upper)."""
    if op in RESOLVER_EXCEPTIONS:
        return RESOLVER_EXCEPTIONS[op]
    parts = [p.upper() if p[:1].isdigit() else p[:1].upper() + p[1:].lower() for p in op.split("_") if p]
    return "Add" + "".join(parts).replace("Lstm", "LSTM").replace("BatchMatmul", "BatchMatMul")


def micro_op_resolver(ops: Sequence[str], *, function: str = "RegisterOps") -> str:
    """C++ that registers exactly ``ops`` (builtin names, as ``builtin_ops`` lists them):

        static tflite::MicroMutableOpResolver<kEdgeportOpCount> resolver;
        if (RegisterOps(resolver) != kTfLiteOk) { ... }

    Custom ops (``CUSTOM:name``) refuse: TFLM has no builtin kernel for them."""
    custom = [op for op in ops if op.startswith("CUSTOM:")]
    if custom:
        raise EdgeportError(f"the model uses custom ops {custom}: TFLite Micro has no kernel for them; "
                            "register your own with resolver.AddCustom(...)")
    ops = sorted(set(ops))
    lines = [f"constexpr unsigned int kEdgeportOpCount = {len(ops)};",
             f"using EdgeportOpResolver = tflite::MicroMutableOpResolver<kEdgeportOpCount>;",
             "",
             "// Registers exactly the builtin ops the model uses; kTfLiteError if one does not fit.",
             f"inline TfLiteStatus {function}(EdgeportOpResolver& resolver) {{"]
    lines += [f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;  // {op}" for op in ops]
    lines += ["  return kTfLiteOk;", "}"]
    return "\n".join(lines) + "\n"


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
        return _parse_allocations(_capture_fd2(self._interp.print_allocations))

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


def _parse_allocations(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in ARENA_LINE.finditer(text)}


# -- child processes: anything that tries an arena size ------------------------------------------

def _child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _no_core_dump() -> None:  # a crash on a small arena must not leave core files behind
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _save_inputs(path: Path, x: Any) -> None:
    arrays = {"x": x} if isinstance(x, np.ndarray) else {f"x/{k}": v for k, v in x.items()}
    np.savez(path, **arrays)


def _load_inputs(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as z:
        if "x" in z.files:
            return z["x"]
        return {k[2:]: z[k] for k in z.files}


def _spawn(mode: str, model: bytes | Path, *, arena_size: int, x: Any = None,
           timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run ``mode`` (measure, fits, predict) in ``python -m edgeport.runtimes.tflm``; returns the
    child's result, or ``{"ok": False, "crashed": bool, "error": ...}``."""
    with tempfile.TemporaryDirectory(prefix="edgeport-tflm-") as tmp:
        job = Path(tmp)
        model_path = Path(model) if isinstance(model, Path) else job / "model.tflite"
        if not isinstance(model, Path):
            model_path.write_bytes(model)
        if x is not None:
            _save_inputs(job / "inputs.npz", x)
        (job / "job.json").write_text(json.dumps({"mode": mode, "model": str(model_path),
                                                  "arena_size": int(arena_size)}))
        try:
            proc = subprocess.run([sys.executable, "-m", "edgeport.runtimes.tflm", str(job)],
                                  capture_output=True, text=True, timeout=timeout, env=_child_env(),
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {"ok": False, "crashed": False, "error": f"timed out after {timeout:.0f} s (hung?)"}
        tail = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()][-3:]
        result_path = job / "result.json"
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
        if result is None or proc.returncode != 0:
            if proc.returncode < 0:
                try:
                    why = f"crashed ({signal.Signals(-proc.returncode).name})"
                except ValueError:
                    why = f"crashed (signal {-proc.returncode})"
            else:
                why = f"exited with status {proc.returncode}"
            error = (result or {}).get("error") or f"the TFLite Micro child process {why}"
            return {"ok": False, "crashed": proc.returncode < 0, "error": error, "stderr": tail}
        result["allocations"] = _parse_allocations(proc.stderr or "")
        if mode == "predict":
            with np.load(job / "outputs.npz", allow_pickle=False) as z:
                result["outputs"] = [z[f"y{j}"] for j in range(len(z.files))]
        return result


def _child(job_dir: Path) -> int:
    """The child's side: load the model with the job's arena, run it, write result.json."""
    job = json.loads((job_dir / "job.json").read_text())
    result: dict[str, Any] = {"ok": False}
    try:
        if job["mode"] == "predict":
            session = TFLMSession(job["model"], arena_size=job["arena_size"])
            outputs = session.predict(_load_inputs(job_dir / "inputs.npz"))
            outputs = outputs if isinstance(outputs, list) else [outputs]
            np.savez(job_dir / "outputs.npz", **{f"y{j}": y for j, y in enumerate(outputs)})
            result.update(engine=session.engine, arena_size=session.arena_size)
        else:
            runtime, engine = import_engine()
            interp = runtime.Interpreter.from_bytes(Path(job["model"]).read_bytes(), arena_size=job["arena_size"])
            k = 0
            while True:  # one inference on zeros: what firmware does after AllocateTensors
                try:
                    d = interp.get_input_details(k)
                except IndexError:
                    break
                interp.set_input(np.zeros(tuple(d["shape"]), d["dtype"]), k)
                k += 1
            interp.invoke()
            if job["mode"] == "measure":
                sys.stderr.flush()
                interp.print_allocations()  # C++ writes to fd 2: the parent reads the pipe
            result.update(engine=engine, arena_size=job["arena_size"])
        result["ok"] = True
    except BaseException as exc:  # every failure goes back to the parent as text
        text = str(exc).strip()
        result["error"] = f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"
    (job_dir / "result.json").write_text(json.dumps(result))
    return 0 if result["ok"] else 3


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
        lo, step = total, 256  # lo fails; grow until a size works, then bisect down to the alignment
        while True:
            hi = min(total + step, found["probe_arena"])
            if hi >= found["probe_arena"] or arena_fits(model_bytes, hi):
                break
            lo, step = hi, step * 2
        while hi - lo > ARENA_ALIGNMENT:
            mid = (lo + hi) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT
            if mid <= lo:
                break
            lo, hi = (lo, mid) if arena_fits(model_bytes, mid) else (mid, hi)
        arena = hi
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


if __name__ == "__main__":  # the child process of _spawn
    _no_core_dump()
    sys.exit(_child(Path(sys.argv[1])))
