"""LiteRT (TFLite) runtime: ai_edge_litert, else tflite_runtime, else tf.lite.

Engines whose tensors have a fixed batch of 1 get one interpreter per batch shape (resized and
allocated once, a few kept); the batch-1 path calls set_tensor / invoke / get_tensor directly.
Every interpreter is resized to the data's shape before it is allocated: a model with free
dimensions that the engine cannot prepare at its declared placeholder shape (``[-1, -1]`` stored as
``[1, 1]``) runs at the shapes of its data (said in the notes).
"""
from __future__ import annotations

import math
import platform
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import DeviceUnavailable, EdgeportError, EngineError, InputError, LoadError, UnknownNameError
from edgeport.runtimes.base import Session, order_inputs, spec_shape
from edgeport.runtimes.artifact_info import embedded, input_order
from edgeport.versions import dist_version
from edgeport.types import TensorSpec

_F32 = np.dtype(np.float32)
_vdot, _isfinite = np.vdot, math.isfinite
ENGINES = ("ai_edge_litert", "tflite_runtime", "tf.lite")
#: Interpreters kept for batch shapes other than the default one.
MAX_BATCH_INTERPRETERS = 4


def _version(*dists: str) -> str:
    return dist_version(*dists) or "?"


def import_engine(name: str | None = None) -> tuple[type, Any, str, list[str]]:
    """(Interpreter class, OpResolverType enum, "engine version", fallback notes) of the first
    engine that imports, ai_edge_litert preferred. Every engine passed over is named in the notes:
    a fallback is never silent (a broken ai-edge-litert install must not hide behind another)."""
    names = [name] if name else list(ENGINES)
    if name is not None and name not in ENGINES:
        raise UnknownNameError("litert engine", name, ENGINES)
    errors = []
    for eng in names:
        try:
            if eng == "ai_edge_litert":
                from ai_edge_litert import interpreter as mod
                found = mod.Interpreter, mod.OpResolverType, f"ai_edge_litert {_version('ai-edge-litert')}"
            elif eng == "tflite_runtime":
                from tflite_runtime import interpreter as mod
                found = mod.Interpreter, mod.OpResolverType, f"tflite_runtime {_version('tflite-runtime')}"
            else:
                import tensorflow as tf
                found = (tf.lite.Interpreter, tf.lite.experimental.OpResolverType, f"tf.lite {tf.__version__}")
        except Exception as exc:  # noqa: BLE001 - ImportError, or a wheel built against another NumPy
            errors.append(f"{eng}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        notes = [f"litert engine fallback: using {found[2]} because {'; '.join(errors)}"] if errors else []
        return (*found, notes)
    raise ImportError("no LiteRT engine could be imported (pip install ai-edge-litert); tried "
                      + "; ".join(errors))


class LiteRTSession(Session):
    """A .tflite model in a LiteRT interpreter.

    Options: ``threads`` (interpreter threads), ``xnnpack`` (default True; False builds the
    interpreter without default delegates), ``engine`` (force "ai_edge_litert",
    "tflite_runtime" or "tf.lite"). ``self.engine`` says which one ran, with its version.
    """

    runtime = "litert"
    probe_by_default = True

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
                 xnnpack: bool = True, engine: str | None = None, allow_nonfinite: bool = False):
        super().__init__(path, threads=threads, device=device, allow_nonfinite=allow_nonfinite)
        if device != "cpu":
            raise DeviceUnavailable(
                f"{self.path}: the litert runtime runs on the CPU only (device={device!r}); "
                "use device='cpu', or the onnxruntime runtime with onnxruntime-gpu for a GPU")
        try:
            self._Interpreter, resolvers, self.engine, self.notes = import_engine(engine)
        except ImportError as exc:
            raise LoadError(f"{self.path}: {exc}") from None
        self.xnnpack = xnnpack
        self._kwargs: dict[str, Any] = {"model_path": str(self.path)}
        if threads is not None:
            self._kwargs["num_threads"] = int(threads)
        if not xnnpack:
            self._kwargs["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interp = self._new_interpreter(allocate=False)
        in_details = interp.get_input_details()
        #: why the declared shape cannot be allocated ("" when it can): then only the data's shapes run
        self._unprepared = self._allocate_declared(interp, in_details)
        out_details = interp.get_output_details()
        names = _signature_names(interp)
        order = input_order(embedded(self.path)) if len(in_details) > 1 else None
        self.inputs = order_inputs([_spec(d, names) for d in in_details], order)
        self.outputs = [_spec(d, names) for d in out_details]
        by_name = {names.get(d["index"], d["name"]): d for d in in_details}
        self._in_index = [by_name[s.name]["index"] for s in self.inputs]
        self._out_index = [d["index"] for d in out_details]
        self._default_shapes = tuple(tuple(int(v) for v in by_name[s.name]["shape"]) for s in self.inputs)
        self._interp = interp
        self._others: OrderedDict[tuple, Any] = OrderedDict()
        # tflite-runtime 2.14 on 32-bit Arm crashes in int8 FULLY_CONNECTED at batch > 1 (a NULL NEON
        # load): feed it its own batch size, row by row there.
        self._resizable = not (self.engine.startswith("tflite_runtime") and
                               platform.machine().lower().startswith(("armv7", "armv6")))
        if not self._resizable:
            self.notes.append(f"{self.engine} on {platform.machine()}: batches run one row at a time "
                              "(its int8 kernels crash on larger batches there)")
        self._finish_setup()
        # The batch-1 fast path: one float32 input of the default shape, bound methods cached.
        self._set, self._invoke, self._get = interp.set_tensor, interp.invoke, interp.get_tensor
        # integer inputs are checked, then cast; an unallocated interpreter has no fast path
        self._fast = len(self.inputs) == 1 and not self._int_inputs[0] and not self._unprepared
        self._fast_shape = self._default_shapes[0]
        self._fast_in, self._fast_out = self._in_index[0], self._out_index[0]
        q, dtype = self._quantizers[0], self._feed_dtypes[0]
        self._fast_conv = q if q is not None else None if dtype == np.float32 else (
            lambda a: a.astype(dtype))
        # Raw uint8 pixels go straight in when the input tensor is uint8 with scale 1, zero point 0
        # (full-integer models calibrated on 0-255): quantizing them would be the identity.
        identity = q is None or (q.inv_scale is None and q.zp is None)
        self._fast_raw = dtype if dtype == np.uint8 and identity else None
        out_dtype = np.dtype(self.outputs[0].dtype)
        self._fast_deq = self._out_quant[0] or (
            None if out_dtype == np.float32 else lambda y: y.astype(np.float32))

    def tensor_storage(self) -> dict[str, int]:
        """Counts of tensor kinds from the public ``get_tensor_details`` (per-channel scales count:
        the legacy ``quantization`` pair is (0, 0) for them)."""
        out = {"float32": 0, "float16": 0, "int8_quantized": 0, "int16_quantized": 0, "integer_io": 0}
        for d in self._interp.get_tensor_details():
            dtype = np.dtype(d["dtype"])
            scales = (d.get("quantization_parameters") or {}).get("scales")
            if scales is not None and len(scales) and dtype.kind in "iu":
                out["int16_quantized" if dtype.itemsize == 2 else "int8_quantized"] += 1
            elif dtype in (np.float32, np.float16):
                out[dtype.name] += 1
        # quantized I/O carries a scale; int32/int64 ids or indices are integers, not quantization
        out["integer_io"] = sum(s.quantized for s in (*self.inputs, *self.outputs))
        return out

    def float16_weights(self, dest_dir: Path) -> tuple[Path, int] | None:
        """The flatbuffer with its float32 constant buffers rounded (needs TensorFlow's flatbuffer tools)."""
        try:
            rounded, n = round_float_weights(self.path.read_bytes())
        except ImportError:
            return None
        dest = Path(dest_dir) / self.path.name
        dest.write_bytes(rounded)
        return dest, n

    def sample_bytes(self) -> int:
        """Every tensor of the interpreter at its allocated (batch-1) shape: activations and weights."""
        total = 0
        for d in self._interp.get_tensor_details():
            total += int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize if len(d["shape"]) else 0
        return total

    def _new_interpreter(self, shapes: tuple = (), *, allocate: bool = True):
        """An interpreter with its inputs resized to ``shapes`` (by input index order) *before* it is
        allocated (the engine prepares its delegate at allocation, at whatever shape it has then)."""
        try:
            interp = self._Interpreter(**self._kwargs)
            for idx, shape in zip(self._in_index if shapes else (), shapes):
                interp.resize_tensor_input(idx, list(shape))
            if allocate:
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise LoadError(f"{self.path}: {self.engine} could not load it: {exc}") from None
        return interp

    def _allocate_declared(self, interp: Any, details: list[dict[str, Any]]) -> str:
        """Allocate ``interp`` at its declared shapes; "" when that works. A model with free dimensions
        whose declared placeholder shape the engine cannot prepare runs at its data's shapes instead
        (said); one with none cannot be run at all and is refused."""
        try:
            interp.allocate_tensors()
            return ""
        except (ValueError, RuntimeError) as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            free = [d for d in details if any(int(v) < 0 for v in d.get("shape_signature", ()))]
            if not free:
                raise LoadError(f"{self.path}: {self.engine} could not load it: {why}") from None
        shapes = ", ".join(f"{[int(v) for v in d['shape_signature']]} stored as {[int(v) for v in d['shape']]}"
                           for d in free)
        self.notes.append(f"{self.engine} cannot prepare the declared input shape ({shapes}: {why}); "
                          "each run allocates at the shape of its data")
        return why

    # -- running -------------------------------------------------------------------------------
    def predict(self, x: Any, *, allow_nonfinite: bool | None = None) -> Any:
        try:
            return self._predict(x, allow_nonfinite)
        except (RuntimeError, ValueError) as exc:  # the interpreter's invoke/set_tensor errors
            if isinstance(exc, EdgeportError):
                raise
            raise self.engine_error(exc) from None

    def _predict(self, x: Any, allow_nonfinite: bool | None) -> Any:
        if (self._fast and self._shapes_said and x.__class__ is np.ndarray and x.shape == self._fast_shape
                and x.dtype is _F32 and allow_nonfinite is None and _isfinite(_vdot(x, x))):
            conv = self._fast_conv
            self._set(self._fast_in, x if conv is None else conv(x))
            self._invoke()
            y = self._get(self._fast_out)
            if not self._single_out:
                return [self._deq(i, self._get(o)) for i, o in enumerate(self._out_index)]
            d = self._fast_deq
            return y if d is None else d(y)
        if (self._fast and self._shapes_said and x.__class__ is np.ndarray and x.dtype is self._fast_raw
                and x.shape == self._fast_shape and self._single_out):
            self._set(self._fast_in, x)
            self._invoke()
            d = self._fast_deq
            y = self._get(self._fast_out)
            return y if d is None else d(y)
        return super().predict(x, allow_nonfinite=allow_nonfinite)

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        shapes = tuple(f.shape for f in feeds)
        interp = self._interpreter_for(shapes)
        if interp is None and not self.batched:
            raise InputError(f"{self.path.name}: {self.engine} cannot resize its inputs to {list(shapes)} "
                             f"(its own shapes: {list(self._default_shapes)})")
        if interp is None:  # the model refuses other batch sizes: feed it its own batch size
            return self._run_chunked(feeds)
        for idx, f in zip(self._in_index, feeds):
            interp.set_tensor(idx, f)
        interp.invoke()
        return [interp.get_tensor(o) for o in self._out_index]

    def _interpreter_for(self, shapes: tuple) -> Any:
        if shapes == self._default_shapes and not self._unprepared:
            return self._interp
        if not self._resizable:
            return None
        interp = self._others.get(shapes)
        if interp is not None:
            self._others.move_to_end(shapes)
            return interp
        try:
            interp = self._new_interpreter(shapes)
        except LoadError as exc:
            if self._unprepared:  # no interpreter at the declared shape to fall back on
                shown = ", ".join(str(list(s)) for s in shapes)
                raise EngineError(f"{self.path}: {self.engine} cannot prepare it at the input shape {shown} "
                                  f"either: {str(exc).split(': ', 2)[-1]}") from None
            self._resizable = False  # remembered: later batches go straight to chunks
            return None
        self._others[shapes] = interp
        if len(self._others) > MAX_BATCH_INTERPRETERS:
            self._others.popitem(last=False)
        return interp

    def _run_chunked(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        step = self._default_shapes[0][0] or 1
        n = feeds[0].shape[0]
        parts: list[list[np.ndarray]] = []
        for start in range(0, n, step):
            chunk = [f[start:start + step] for f in feeds]
            short = chunk[0].shape[0]
            if short < step:  # pad the last chunk with copies of its first row
                chunk = [np.concatenate([c] + [c[:1]] * (step - short)) for c in chunk]
            for idx, c in zip(self._in_index, chunk):
                self._interp.set_tensor(idx, np.ascontiguousarray(c))
            self._interp.invoke()
            parts.append([self._interp.get_tensor(o)[:short] for o in self._out_index])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self._out_index))]

    def close(self) -> None:
        self._others.clear()


def round_float_weights(tflite: bytes) -> tuple[bytes, int]:
    """The model with every float32 constant buffer rounded to float16 (kept float32), and how many."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(tflite))
    seen, rounded = set(), 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            buf = model.buffers[tensor.buffer]
            if tensor.type != 0 or tensor.buffer in seen or buf.data is None or not len(buf.data):
                continue
            seen.add(tensor.buffer)
            values = np.frombuffer(bytes(bytearray(buf.data)), np.float32)
            buf.data = np.frombuffer(values.astype(np.float16).astype(np.float32).tobytes(), np.uint8)
            rounded += 1
    return bytes(fu.convert_object_to_bytearray(model)), rounded


def _signature_names(interp: Any) -> dict[int, str]:
    """{tensor index: signature name} of the only signature, e.g. {0: "image", 16: "output_0"},
    through the public SignatureRunner details (``get_signature_list`` / ``get_signature_runner``).
    A model without exactly one signature keeps its tensor names ({})."""
    try:
        sigs = interp.get_signature_list()
        if not sigs or len(sigs) != 1:
            return {}
        runner = interp.get_signature_runner(next(iter(sigs)))
        details = {**runner.get_input_details(), **runner.get_output_details()}
    except (AttributeError, ValueError, RuntimeError):  # an engine without signature runners: tensor names
        return {}
    names = {int(d["index"]): n for n, d in details.items()}
    return names if len(names) == len(details) else {}


def _spec(d: dict[str, Any], names: dict[int, str]) -> TensorSpec:
    shape = d.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = d["shape"]
    scale, zp = d.get("quantization", (0.0, 0))
    return TensorSpec(names.get(d["index"], d["name"]), spec_shape(shape), np.dtype(d["dtype"]).name,
                      float(scale) if scale else None, int(zp) if scale else None)
