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
    """One id input: its name, the vocabulary size (the table's first dimension) and what read it."""

    name: str
    vocabulary: int
    layer: str

    def __post_init__(self) -> None:
        if self.vocabulary < 1:
            raise ValueError(f"id input {self.name!r}: vocabulary {self.vocabulary} < 1")

    @property
    def record(self) -> dict[str, Any]:
        """What the manifest's calibration record says of this input."""
        return {"vocabulary": self.vocabulary, "read_from": f"Embedding {self.layer!r} input_dim",
                "drawn_as": f"whole numbers in [0, {self.vocabulary})"}


def _consumers(model: Any, tensor: Any) -> list[Any]:
    """The layers of a functional Keras ``model`` that take ``tensor`` as an input."""
    out = []
    for layer in getattr(model, "layers", []):
        for node in getattr(layer, "_inbound_nodes", []):  # Keras 3 functional graph (no public accessor)
            if any(t is tensor for t in getattr(node, "input_tensors", [])):
                out.append(layer)
    return out


def find(model: Any) -> dict[str, IdInput]:
    """{input name: IdInput} for each input of a Keras ``model`` that feeds an ``Embedding`` directly;
    ``{}`` for a model without a Keras graph (a SavedModel source) or without such an input."""
    if model is None or not getattr(model, "inputs", None):
        return {}
    found = {}
    for tensor in model.inputs:
        for layer in _consumers(model, tensor):
            if type(layer).__name__ == "Embedding" and isinstance(getattr(layer, "input_dim", None), int):
                name = tensor.name
                found[name] = IdInput(name, int(layer.input_dim), layer.name)
                break
    return found
