"""This machine's int8 matrix-product rate, measured through the engines that run int8 models.

numpy has no accelerated int8 product (it loops in C without VNNI/dot-product), so an int8 row's
efficiency held to ``numpy`` or to "the float32 peak x 4" is made up. Here the same n x n product
runs through each engine's own int8 GEMM, built in this process:

- ``onnxruntime``: a one-node ``MatMulInteger`` graph (uint8 activations x int8 constant weights
  -> int32), the kernel ONNX Runtime's quantized MatMul/Conv run on (MLAS, VNNI/AVX2/NEON picked at
  run time);
- ``litert``: a one-op int8 ``FULLY_CONNECTED`` model written with LiteRT's flatbuffer schema
  (int8 input and weights, int32 bias, int8 output), what a full-integer TFLite model's Dense and
  1x1 conv layers run on (XNNPACK's QS8 GEMM when it takes the op).

A product is n^3 multiply-accumulates. Each engine's figure is recorded with how it was measured;
an int8 row is held to the peak of its own runtime (the best one when its runtime has none).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

#: builder -> how its int8 figure is measured (printed and recorded beside the numbers); a runtime's
#: registry row names its builder (``Capabilities.int8_matmul``)
HOW = {"onnxruntime_int8_matmul": "ONNX Runtime MatMulInteger, uint8 x int8 -> int32",
       "litert_int8_matmul": "LiteRT int8 FULLY_CONNECTED, int8 x int8 -> int8 (int32 bias)"}


def onnxruntime_int8_matmul(n: int, threads: int | None) -> Callable[[], Any]:
    """A callable running one n x n uint8 x int8 MatMulInteger through ONNX Runtime's CPU kernels."""
    from onnx import TensorProto

    from edgeport.benchmarks.bench.timing import onnx_matmul_session

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b = rng.integers(-127, 128, (n, n), dtype=np.int8)
    sess = onnx_matmul_session("MatMulInteger", TensorProto.UINT8, TensorProto.INT32, b, n, threads)
    return lambda: sess.run(None, {"a": a})


def litert_fc_model(n: int) -> bytes:
    """The flatbuffer of a LiteRT model with one int8 FULLY_CONNECTED op: [n, n] x [n, n]^T."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(0)

    def buffer(data: bytes = b"") -> Any:
        buf = s.BufferT()
        buf.data = np.frombuffer(data, np.uint8) if data else None
        return buf

    def tensor(name: str, shape: list[int], kind: int, index: int, scale: float, zero: int = 0) -> Any:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), shape, kind, index
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zero]
        t.quantization = q
        return t

    weights = rng.integers(-127, 128, (n, n), dtype=np.int8).tobytes()
    bias = np.zeros(n, np.int32).tobytes()
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = s.FullyConnectedOptionsT()
    graph = s.SubGraphT()
    graph.tensors = [tensor("x", [n, n], s.TensorType.INT8, 1, 0.05),
                     tensor("w", [n, n], s.TensorType.INT8, 2, 0.01),
                     tensor("b", [n], s.TensorType.INT32, 3, 0.05 * 0.01),
                     tensor("y", [n, n], s.TensorType.INT8, 4, 10.0)]
    graph.inputs, graph.outputs, graph.operators = [0], [3], [op]
    model = s.ModelT()
    model.version, model.description = 3, b"edgeport int8 peak"
    model.operatorCodes, model.subgraphs = [code], [graph]
    model.buffers = [buffer(), buffer(), buffer(weights), buffer(bias), buffer()]
    builder = flatbuffers.Builder(2 * n * n + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def litert_int8_matmul(n: int, threads: int | None) -> Callable[[], Any]:
    """A callable running the int8 FULLY_CONNECTED model through LiteRT (XNNPACK when it takes it)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=litert_fc_model(n), num_threads=int(threads) if threads else None)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    interp.set_tensor(index, np.random.default_rng(1).integers(-128, 128, (n, n), dtype=np.int8))
    return interp.invoke


def engines() -> dict[str, str]:
    """Runtime -> "module:attr" of its int8 GEMM builder, for every runtime that declares one."""
    from edgeport.runtimes.registry import CAPABILITIES

    return {name: c.int8_matmul for name, c in CAPABILITIES.items() if c.int8_matmul}


def int8_matmul_peak(n: int = 2048, *, seconds: float = 1.0, threads: int | None = None) -> dict[str, Any]:
    """The best int8 n x n product rate per engine (``by_runtime``) and overall; an engine that is
    not installed or fails is recorded with its error, never dropped."""
    from edgeport.benchmarks.bench.timing import rate
    from edgeport.lazy import resolve

    by_runtime: dict[str, Any] = {}
    for name, spec in engines().items():
        how = HOW[spec.rpartition(":")[2]]
        try:
            by_runtime[name] = {**rate(resolve(spec)(n, threads), n, seconds), "how": how}
        except Exception as exc:  # noqa: BLE001 - recorded; the other engine's figure stands
            by_runtime[name] = {"error": f"{type(exc).__name__}: {exc}", "how": how}
    measured = [(k, v) for k, v in by_runtime.items() if "gmac_s" in v]
    if not measured:
        raise RuntimeError("no engine measured an int8 matmul: "
                           + "; ".join(f"{k}: {v['error']}" for k, v in by_runtime.items()))
    source, best = max(measured, key=lambda kv: kv[1]["gmac_s"])
    return {"n": n, "precision": "int8", "source": source, "gmac_s": best["gmac_s"], "gop_s": 2 * best["gmac_s"],
            "by_runtime": by_runtime}
