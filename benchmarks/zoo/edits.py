"""The sensitivity edit: one weight tensor of a published model scaled by 1.01, everything else
byte-identical. The largest float32, float16 (or int8, rounded) constant whose bytes occur exactly
once in the file is rewritten in place, so no serialiser touches the rest of the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHT_DTYPES = (np.float32, np.float16, np.int8)


class NoWeightToEdit(ValueError):
    """A file with no constant tensor the edit can find."""


TFLITE_TYPES = {0: np.float32, 1: np.float16, 9: np.int8}  # the schema's TensorType values


def _tflite_constants(data: bytes) -> list[tuple[str, np.ndarray]]:
    """Every constant tensor with its stored bytes, read from the flatbuffer itself (no interpreter:
    reading weights back from one crashed on a resource-variable model)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(data, 0)
    out = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            buf = model.Buffers(t.Buffer())
            dtype = TFLITE_TYPES.get(t.Type())
            if dtype is None or buf is None or buf.DataLength() == 0:
                continue
            raw = buf.DataAsNumpy().tobytes()
            if len(raw) % np.dtype(dtype).itemsize:
                continue
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (-1,)
            a = np.frombuffer(raw, dtype)
            out.append(((t.Name() or b"?").decode(), a.reshape(shape) if int(np.prod(shape)) == a.size else a))
    return out


def _onnx_constants(path: Path) -> list[tuple[str, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    def walk(graph):  # initializers and Constant nodes, in subgraphs (If, Loop) too
        yield from graph.initializer
        for node in graph.node:
            for a in node.attribute:
                if node.op_type == "Constant" and a.name == "value":
                    yield a.t
                yield from (t for g in [*([a.g] if a.HasField("g") else []), *a.graphs] for t in walk(g))

    model = onnx.load(str(path), load_external_data=False)
    return [(t.name, numpy_helper.to_array(t)) for t in walk(model.graph)]


def _scaled(a: np.ndarray, factor: float) -> np.ndarray:
    if a.dtype == np.int8:
        return np.clip(np.round(a.astype(np.float64) * factor), -128, 127).astype(np.int8)
    return (a.astype(np.float64) * factor).astype(a.dtype)


def scale_one_weight(src: Path, dst: Path, factor: float = 1.01) -> str:
    """Write ``src`` to ``dst`` with its largest uniquely-stored weight tensor scaled by ``factor``;
    returns what was edited (tensor name, dtype, shape)."""
    data = src.read_bytes()
    consts = _onnx_constants(src) if src.suffix == ".onnx" else _tflite_constants(data)
    consts = [(n, a) for n, a in consts if a.dtype in WEIGHT_DTYPES and a.size > 16
              and (a.dtype == np.int8 or np.isfinite(a).all())]
    for name, a in sorted(consts, key=lambda c: -c[1].nbytes):
        old = a.tobytes()
        new = _scaled(a, factor).tobytes()
        if new != old and data.count(old) == 1:
            dst.write_bytes(data.replace(old, new))
            return f"{name} ({a.dtype}, {'x'.join(map(str, a.shape))}) x {factor}"
    raise NoWeightToEdit(f"{src.name}: no float32/float16/int8 weight tensor stored once in the file")
