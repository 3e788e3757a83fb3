"""The web bundle's models: the mobile variants (fixed batch 1, uint8 RGB in, float32 probabilities
out) as .tflite for LiteRT.js and as ONNX for ONNX Runtime Web. The ONNX files are converted from
those very .tflite variants by tf2onnx (an int8 .tflite becomes QuantizeLinear/DequantizeLinear
around the same int8 weights and scales), so both engines run one model, not two exports that
merely share a name. LiteRT.js has no resize call: a dynamic batch is refused here, before a user
meets "TensorBuffer ranked tensor type ... does not match expected ... [-1, ...]" in a browser."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError, ExportError

#: ONNX's tensor element types a browser tensor can carry (JS typed arrays), by their onnx number.
ONNX_IO_TYPES = {1: "float32", 2: "uint8", 6: "int32"}
JS_IO_DTYPES = ("float32", "int32", "uint8")
OPSET = 17


def tflite_io(model: bytes) -> dict[str, Any]:
    """Input and output of a .tflite: shape, shape_signature, dtype, scale/zero point when quantized."""
    from edgeport.runtimes.litert import import_engine

    Interpreter, resolvers, _, _ = import_engine()
    interp = Interpreter(model_content=model,
                         experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    def io(d: dict[str, Any]) -> dict[str, Any]:
        scale, zero = d["quantization"]
        sig = d.get("shape_signature")
        return {"shape": [int(v) for v in d["shape"]],
                "shape_signature": [int(v) for v in (sig if sig is not None and len(sig) else d["shape"])],
                "dtype": np.dtype(d["dtype"]).name,
                **({"scale": float(scale), "zero_point": int(zero)} if scale else {})}

    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise EdgeportError(f"a web image classifier has one input and one output; this .tflite has {len(ins)} "
                            f"and {len(outs)}")
    return {"input": io(ins[0]), "output": io(outs[0])}


def require_web_tflite(model: bytes, name: str) -> dict[str, Any]:
    """The model's I/O if LiteRT.js can run it: a fixed batch and JS-typed tensors; EdgeportError otherwise."""
    desc = tflite_io(model)
    for side in ("input", "output"):
        io = desc[side]
        if any(d < 0 for d in io["shape_signature"]):
            raise EdgeportError(f"{name}: {side} has a dynamic batch (shape_signature {io['shape_signature']}); "
                                "LiteRT.js refuses it and has no resize call. A web bundle carries fixed-batch "
                                "models: the mobile variants (batch 1, uint8 RGB in)")
        if io["dtype"] not in JS_IO_DTYPES:
            raise EdgeportError(f"{name}: {side} is {io['dtype']}; browser tensors are only "
                                f"{', '.join(JS_IO_DTYPES)} (a web int8 model takes uint8 pixels)")
    return desc


def to_onnx(tflite: bytes, name: str) -> bytes:
    """The .tflite converted to ONNX by tf2onnx, its I/O checked to be fixed and JS-typed."""
    import tf2onnx

    with tempfile.TemporaryDirectory(prefix="edgeport-web-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite)
        try:
            proto, _ = tf2onnx.convert.from_tflite(str(path), opset=OPSET)
        except Exception as exc:  # noqa: BLE001 - tf2onnx raises anything; name the model and the cause
            raise ExportError(f"{name}: tf2onnx could not convert it ({type(exc).__name__}: {exc})") from None
    for v in [*proto.graph.input, *proto.graph.output]:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if any(d <= 0 for d in dims) or t.elem_type not in ONNX_IO_TYPES:
            raise ExportError(f"{name}: the ONNX conversion has {v.name} {dims} of type {t.elem_type}; ONNX Runtime "
                              "Web needs fixed dims and float32/int32/uint8")
    return proto.SerializeToString()


def onnx_io(model: bytes) -> dict[str, Any]:
    """Input and output of an ONNX model (name, shape, dtype)."""
    import onnx

    proto = onnx.load_from_string(model)

    def io(v) -> dict[str, Any]:
        t = v.type.tensor_type
        return {"name": v.name, "shape": [d.dim_value for d in t.shape.dim], "dtype": ONNX_IO_TYPES[t.elem_type]}

    return {"input": io(proto.graph.input[0]), "output": io(proto.graph.output[0])}
