"""TFLite flatbuffer helpers: embed/read edgeport metadata, list builtin ops, describe tensors.

Uses TensorFlow's own ``flatbuffer_utils`` (tflite-support cannot be installed beside TF 2.21).
When the model is packed again, every buffer's data is 16-byte aligned, as the schema's
``force_align: 16`` asks and as firmware (TFLite Micro) expects; the Python packer alone drops it.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable

import numpy as np

from edgeport.types import METADATA_KEY, TensorSpec

ALIGNMENT = 16


def _schema():
    # Private module path: TensorFlow ships the generated TFLite schema classes only as
    # tensorflow.lite.python.schema_py_generated (flatbuffer_utils, public, uses it itself); no public
    # path exposes them. tests/test_private_apis.py fails loudly when it moves.
    from tensorflow.lite.python import schema_py_generated as schema_fb

    return schema_fb


def _aligned_buffer_class():
    fb = _schema()

    class AlignedBufferT(fb.BufferT):
        def Pack(self, builder):  # flatbuffers' own names
            # flatbuffers' Python Builder has no public aligned-bytes call: write the vector through
            # its ``head`` / ``Bytes`` fields (stable since flatbuffers 1.12; tests/test_private_apis.py).
            data = None
            if self.data is not None and len(self.data):
                raw = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), ALIGNMENT)
                builder.head = builder.head - len(raw)
                builder.Bytes[builder.head:builder.head + len(raw)] = raw
                data = builder.EndVector(len(raw))
            fb.BufferStart(builder)
            if data is not None:
                fb.BufferAddData(builder, data)
            fb.BufferAddOffset(builder, self.offset)
            fb.BufferAddSize(builder, self.size)
            return fb.BufferEnd(builder)

    return AlignedBufferT


def add_metadata(model_bytes: bytes, meta: dict[str, Any], name: str = METADATA_KEY) -> bytes:
    """Return the model with a metadata entry ``name`` holding ``meta`` as UTF-8 JSON."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    fb = _schema()
    model = fu.read_model_from_bytearray(bytearray(model_bytes))
    payload = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    model.metadata = [m for m in (model.metadata or []) if m.name not in (name, name.encode())]
    buffer = fb.BufferT()
    buffer.data = payload
    model.buffers.append(buffer)
    entry = fb.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata.append(entry)
    aligned = _aligned_buffer_class()
    for buf in model.buffers:
        buf.__class__ = aligned
    return bytes(fu.convert_object_to_bytearray(model))


def builtin_ops(model_bytes: bytes) -> list[str]:
    """Sorted names of the TFLite builtin operators the model's subgraphs use (custom ops by name)."""
    fb = _schema()
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fb.Model.GetRootAsModel(bytearray(model_bytes), 0)
    used: set[int] = set()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        used.update(graph.Operators(o).OpcodeIndex() for o in range(graph.OperatorsLength()))
    ops = set()
    for index in used:
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == fb.BuiltinOperator.CUSTOM:
            ops.add("CUSTOM:" + (code.CustomCode() or b"?").decode())
        else:
            ops.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(ops)


_INTERFACE = {"QUANTIZE", "DEQUANTIZE"}  # the casts around a float op or at the I/O, not computation


def float_ops(model_bytes: bytes) -> list[str]:
    """'OP tensor' (its first output's name) for each op of the main subgraph that computes in float: a
    float32 input or output, the QUANTIZE/DEQUANTIZE casts around it aside. In a quantized model these
    are the ops kept in float."""
    fb = _schema()
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fb.Model.GetRootAsModel(bytearray(model_bytes), 0)
    graph, out = model.Subgraphs(0), []
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        outs = [op.Outputs(i) for i in range(op.OutputsLength()) if op.Outputs(i) >= 0]
        ins = [op.Inputs(i) for i in range(op.InputsLength()) if op.Inputs(i) >= 0]
        if kind in _INTERFACE or not outs:
            continue
        if any(graph.Tensors(t).Type() == fb.TensorType.FLOAT32 for t in ins + outs):
            out.append(f"{kind} {graph.Tensors(outs[0]).Name().decode()}")
    return out


def buffer_offsets(model_bytes: bytes) -> list[int]:
    """Byte offsets of every non-empty buffer's data (for alignment checks)."""
    model = _schema().Model.GetRootAsModel(bytearray(model_bytes), 0)
    offsets = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            offsets.append(buf._tab.Vector(buf._tab.Offset(4)))
    return offsets


def interpreter(model_bytes: bytes, warn: Callable[[str], None] | None = None):
    """A LiteRT interpreter with tensors allocated (the engine edgeport.runtimes would pick; a
    fallback to another engine is passed to ``warn``, never silent)."""
    from edgeport.runtimes.litert import import_engine

    Interpreter, _, _, notes = import_engine()
    for note in notes:
        (warn or _warn_once)(f"warning: {note}")
    it = Interpreter(model_content=bytes(model_bytes))
    it.allocate_tensors()
    return it


_SAID: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _SAID:
        _SAID.add(text)
        print(text, file=sys.stderr)


def _spec(detail: dict) -> TensorSpec:
    scale, zero = detail.get("quantization", (0.0, 0))
    shape = detail.get("shape_signature", detail["shape"])
    return TensorSpec(name=detail["name"], shape=tuple(int(d) for d in shape),
                      dtype=np.dtype(detail["dtype"]).name,
                      scale=float(scale) if scale else None, zero_point=int(zero) if scale else None)


def describe(model_bytes: bytes, warn: Callable[[str], None] | None = None) -> dict[str, list[dict]]:
    """Inputs and outputs as the LiteRT interpreter reports them (loading it proves it loads)."""
    it = interpreter(model_bytes, warn)
    return {"inputs": [_spec(d).to_dict() for d in it.get_input_details()],
            "outputs": [_spec(d).to_dict() for d in it.get_output_details()]}
