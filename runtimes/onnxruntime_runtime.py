"""ONNX Runtime: CPU by default; ``device="gpu"`` takes TensorRT or CUDA when this build has them."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeport.errors import EdgeportError, DeviceUnavailable, LoadError, UnknownNameError
from edgeport.runtimes.base import Session, order_inputs, spec_shape, tensor_keys
from edgeport.runtimes.dims import dim_names
from edgeport.runtimes.artifact_info import input_order
from edgeport.types import METADATA_KEY, TensorSpec

_F32 = np.dtype(np.float32)
_vdot, _isfinite = np.vdot, math.isfinite
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
           "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16",
           "tensor(uint16)": "uint16", "tensor(int32)": "int32", "tensor(int64)": "int64",
           "tensor(bool)": "bool"}


def choose_providers(device: str, available: Sequence[str], path: Path) -> list[str]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if not gpu:
        raise DeviceUnavailable(
            f"{path}: device='gpu' needs the TensorRT or CUDA execution provider, but this "
            f"onnxruntime has only {', '.join(available) or 'none'}; install onnxruntime-gpu "
            "(in place of onnxruntime) on a machine with an NVIDIA GPU, or use device='cpu'")
    return gpu + ["CPUExecutionProvider"]


class OnnxRuntimeSession(Session):
    """An .onnx model in an ``onnxruntime.InferenceSession``.

    Options: ``threads`` (intra-op threads), ``graph_optimization_level``
    ("disable" | "basic" | "extended" | "all"), ``providers`` (explicit list, overrides device).
    """

    runtime = "onnxruntime"
    probe_by_default = True

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
                 graph_optimization_level: str = "all", providers: Sequence[str] | None = None,
                 allow_nonfinite: bool = False):
        super().__init__(path, threads=threads, device=device, allow_nonfinite=allow_nonfinite)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise LoadError(f"{self.path}: onnxruntime is not installed (pip install onnxruntime): "
                            f"{exc}") from None
        self.engine = f"onnxruntime {ort.__version__}"
        if graph_optimization_level not in GRAPH_OPTIMIZATION_LEVELS:
            raise UnknownNameError("graph optimization level", graph_optimization_level,
                                   GRAPH_OPTIMIZATION_LEVELS)
        levels = ort.GraphOptimizationLevel
        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "disable": levels.ORT_DISABLE_ALL, "basic": levels.ORT_ENABLE_BASIC,
            "extended": levels.ORT_ENABLE_EXTENDED, "all": levels.ORT_ENABLE_ALL,
        }[graph_optimization_level]
        if threads is not None:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        available = ort.get_available_providers()
        wanted = list(providers) if providers else choose_providers(device, available, self.path)
        missing = [p for p in wanted if p not in available]
        if missing:
            raise DeviceUnavailable(f"{self.path}: execution provider(s) {missing} not available; "
                                    f"this onnxruntime has {', '.join(available)}")
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=so, providers=wanted)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind types (InvalidProtobuf, ...)
            raise LoadError(f"{self.path}: onnxruntime could not load it: "
                            f"{type(exc).__name__}: {exc}") from None
        self.providers = self._sess.get_providers()
        if device == "gpu" and not providers and not any(p in self.providers for p in GPU_PROVIDERS):
            raise DeviceUnavailable(
                f"{self.path}: onnxruntime lists {', '.join(GPU_PROVIDERS)} but could not start "
                f"either (no usable CUDA/TensorRT libraries or GPU?); it runs on {self.providers}")
        try:
            meta = json.loads(self._sess.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}"))
        except (ValueError, AttributeError):
            meta = None
        engine_inputs = self._sess.get_inputs()
        self.inputs = order_inputs([_spec(i) for i in engine_inputs], input_order(meta))
        keys = tensor_keys([i.name for i in engine_inputs])
        self.dim_names = {k: dim_names(i.shape) for k, i in zip(keys, engine_inputs)}
        self.outputs = [_spec(o) for o in self._sess.get_outputs()]
        self._in_names = [s.name for s in self.inputs]
        self._out_names = [s.name for s in self.outputs]
        # A fixed (non-free) batch dimension: fed in chunks of that size.
        self._fixed_batch = next((s.shape[0] for s in self.inputs if s.shape and s.shape[0]), None)
        self._finish_setup()
        self._sess_run = self._sess.run
        self._fast = len(self.inputs) == 1 and self._fixed_batch in (None, 1) and \
            self._feed_dtypes[0] == np.float32
        self._fast_sample = self._sample_shapes[0]
        self._fast_name = self._in_names[0]

    def tensor_storage(self) -> dict[str, int]:
        """Counts of initializer kinds and quantize ops, read with ``onnx`` when it is installed
        (a Pi without it gets an empty answer, which says so)."""
        try:
            import onnx
        except ImportError:
            return {}
        try:
            graph = onnx.load(str(self.path), load_external_data=False).graph
        except Exception:  # noqa: BLE001 - a .ort file or an unreadable graph: the engine ran it, onnx cannot say
            return {}
        t = onnx.TensorProto
        kinds = [i.data_type for i in graph.initializer]
        quant_ops = sum(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                                      "ConvInteger", "DynamicQuantizeLinear") for n in graph.node)
        return {"float32": kinds.count(t.FLOAT), "float16": kinds.count(t.FLOAT16),
                "int8_quantized": kinds.count(t.INT8) + kinds.count(t.UINT8) + quant_ops,
                "int16_quantized": kinds.count(t.INT16) + kinds.count(t.UINT16),
                "dynamic_quantize": sum(n.op_type == "DynamicQuantizeLinear" for n in graph.node),
                # quantized I/O is 8-bit; int32/int64 ids or indices are integers, not quantization
                "integer_io": sum(np.dtype(s.dtype).kind in "iu" and np.dtype(s.dtype).itemsize == 1
                                  for s in (*self.inputs, *self.outputs))}

    def float16_weights(self, dest_dir: Path) -> tuple[Path, int] | None:
        """The graph with its float32 initializers rounded (needs ``onnx``; None without it)."""
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            return None
        model = onnx.load(str(self.path))
        n = 0
        for init in model.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT:
                values = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(values, init.name))
                n += 1
        dest = Path(dest_dir) / self.path.name
        onnx.save(model, str(dest))
        return dest, n

    def predict(self, x: Any, *, allow_nonfinite: bool | None = None) -> Any:
        try:
            return self._predict(x, allow_nonfinite)
        except EdgeportError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind exception types
            raise self.engine_error(exc) from None

    def _predict(self, x: Any, allow_nonfinite: bool | None) -> Any:
        if (self._fast and self._shapes_said and x.__class__ is np.ndarray and x.dtype is _F32
                and x.shape[1:] == self._fast_sample and x.shape[0] == 1 and allow_nonfinite is None
                and _isfinite(_vdot(x, x))):
            out = self._sess_run(self._out_names, {self._fast_name: x})
            return out[0] if self._single_out else out
        return super().predict(x, allow_nonfinite=allow_nonfinite)

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        step = self._fixed_batch
        n = feeds[0].shape[0] if self.batched else None
        if not step or step == n or not self.batched:
            return self._sess_run(self._out_names, dict(zip(self._in_names, feeds)))
        parts = []
        for start in range(0, n, step):
            chunk = [f[start:start + step] for f in feeds]
            short = chunk[0].shape[0]
            if short < step:
                chunk = [np.concatenate([c] + [c[:1]] * (step - short)) for c in chunk]
            parts.append([o[:short] for o in self._sess_run(self._out_names,
                                                            dict(zip(self._in_names, chunk)))])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self._out_names))]


def _spec(t: Any) -> TensorSpec:
    return TensorSpec(t.name, spec_shape(t.shape), _DTYPES.get(t.type, t.type))
