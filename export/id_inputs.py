"""Id inputs: model inputs whose values are token / character ids (they feed an ``Embedding``), even
when declared float32. Quantizing such an input rounds ids into other ids (an int8 step of 29/255 turns
id 5 into 4.9997, which the cast to an index truncates to 4), so every quantized format keeps them
exact, and calibration without data draws them as whole numbers in [0, vocabulary), never as values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IdInput:
    """One id input: its name, the vocabulary size (the table's first dimension) and where that was read."""

    name: str
    vocabulary: int
    read_from: str

    def __post_init__(self) -> None:
        if self.vocabulary < 1:
            raise ValueError(f"id input {self.name!r}: vocabulary {self.vocabulary} < 1")

    @property
    def record(self) -> dict[str, Any]:
        """What the manifest's calibration record says of this input."""
        return {"vocabulary": self.vocabulary, "read_from": self.read_from,
                "drawn_as": f"whole numbers in [0, {self.vocabulary})"}


def _input_of(layer: Any) -> Any:
    """A Keras layer's input tensor (public ``layer.input``); None for a layer called more than once."""
    try:
        return layer.input
    except (AttributeError, ValueError):  # shared layers have no single input
        return None


def find(model: Any) -> dict[str, IdInput]:
    """{input name: IdInput} for each input of a Keras ``model`` that feeds an ``Embedding`` directly;
    ``{}`` for a model without a Keras graph (a SavedModel source) or without such an input."""
    if model is None or not getattr(model, "inputs", None):
        return {}
    found = {}
    embeddings = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ == "Embedding"
                  and isinstance(getattr(layer, "input_dim", None), int)]
    for tensor in model.inputs:
        layer = next((e for e in embeddings if _input_of(e) is tensor), None)
        if layer is not None:
            found[tensor.name] = IdInput(tensor.name, int(layer.input_dim), f"Embedding {layer.name!r} input_dim")
    return found


#: TFLite ops that look an id up in a table: (op, the input index of the ids).
LOOKUPS = {"GATHER": 1, "EMBEDDING_LOOKUP": 0}
MAX_HOPS = 6  # ops between an input's CAST and its lookup (Keras wraps negative ids: LESS, ADD, SELECT_V2)


def from_tflite(model: bytes) -> dict[str, IdInput]:
    """{input name: IdInput} read from a float32 .tflite (a source without a Keras graph): an input whose
    CAST to an integer type reaches a GATHER's ids within MAX_HOPS ops; the vocabulary is the looked-up
    table's first dimension."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgeport.runtimes.dims import tensor_key

    kinds = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    integer = {schema.TensorType.INT32, schema.TensorType.INT64}
    m = fu.read_model_from_bytearray(bytearray(model))
    graph = m.subgraphs[0]
    ops = [(kinds.get(max(m.operatorCodes[op.opcodeIndex].builtinCode,
                          m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode), "CUSTOM"),
            [int(i) for i in op.inputs], [int(o) for o in op.outputs]) for op in graph.operators]
    found = {}
    for index in graph.inputs:
        casts = [outs[0] for kind, ins, outs in ops if kind == "CAST" and index in ins
                 and graph.tensors[outs[0]].type in integer]
        reached, frontier = set(casts), set(casts)
        for _ in range(MAX_HOPS):
            hits = [(kind, ins) for kind, ins, _ in ops if kind in LOOKUPS and ins[LOOKUPS[kind]] in reached]
            if hits:
                kind, ins = hits[0]
                table = graph.tensors[ins[1 - LOOKUPS[kind]]]
                name = tensor_key(graph.tensors[index].name.decode())
                found[name] = IdInput(name, int(table.shape[0]), f"the {kind} table's first dimension")
                break
            frontier = {o for _, ins, outs in ops if frontier & set(ins) for o in outs} - reached
            reached |= frontier
            if not frontier:
                break
    return found
