"""Describe an exported artifact for the manifest: its inputs/outputs and the library versions."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeport.export.context import ExportContext
from edgeport.export.registry import INFO, FormatInfo, Proof
from edgeport.lazy import resolve
from edgeport.types import TensorSpec
from edgeport.versions import package_versions

_PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",), "tf2onnx": ("tf2onnx",),
             "onnx": ("onnx",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
             "ai_edge_litert": ("ai-edge-litert",), "numpy": ("numpy",)}


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    found = package_versions(_PACKAGES)
    return {**{key: found.get(key) for key in _PACKAGES}, "python": found["python"]}


def _onnx_io(path: Path) -> dict[str, list[dict]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}

    def spec(value) -> dict:
        t = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        return TensorSpec(value.name, shape, dtype).to_dict()

    return {"inputs": [spec(v) for v in graph.input if v.name not in init],
            "outputs": [spec(v) for v in graph.output]}


def _saved_model_io(ctx: ExportContext, path: Path) -> dict[str, list[dict]]:
    inputs, outputs = ctx.load_signature(path)

    def spec(name: str, t) -> dict:
        return TensorSpec(name, tuple(t.shape.as_list()), t.dtype.name).to_dict()

    return {"inputs": [spec(n, t) for n, t in inputs.items()],
            "outputs": [spec(n, t) for n, t in outputs.items()]}


def describe(ctx: ExportContext, info: FormatInfo, path: Path) -> dict[str, Any]:
    """``{"inputs": [...], "outputs": [...]}`` read back from the written artifact."""
    from edgeport.export import tflite_flatbuffer

    if info.describer:
        return resolve(info.describer)(ctx, path)
    if info.proof is Proof.SAME_BYTES:  # it embeds the model it is made from: describe that one
        return describe(ctx, INFO[info.needs.value], ctx.dependency(info.needs))
    if info.family == "savedmodel":
        return _saved_model_io(ctx, path)
    if info.family == "tflite":
        return tflite_flatbuffer.describe(path.read_bytes(), ctx.warn)
    if info.family == "onnx":
        return _onnx_io(path)
    raise ValueError(f"no describer for the {info.family!r} family")
