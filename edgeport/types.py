"""Shared, engine-free types: tensor descriptions and the input contract (numpy/json only)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as an engine reports it (shape uses None/-1 for free dims)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    scale: float | None = None  # quantization of this tensor (per-tensor), if any
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale != 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = [None if s is None or s < 0 else int(s) for s in self.shape]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d.get("scale"), d.get("zero_point"))


@dataclass(frozen=True)
class InputContract:
    """What a caller feeds every artifact of a model: the same on a phone, a Pi and in Python.

    ``kind="image"``: raw pixels in ``pixel_range`` (0-255), layout NHWC, scaling is inside the model.
    ``kind="values"``: plain float features of ``shape`` (e.g. celsius: one number).
    """

    kind: str = "image"
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    shape: tuple[int, ...] = ()
    layout: str = "NHWC"
    pixel_range: tuple[float, float] = (0.0, 255.0)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Per-channel normalization the model expects of image pixels: (pixel - mean) / std (a
    #: third-party model's NormalizationOptions). Empty for edgeport's models (scaling is inside).
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("image", "values"):
            raise ValueError(f"InputContract.kind must be 'image' or 'values', not {self.kind!r}")
        if self.kind == "image" and not (self.height and self.width and self.channels):
            raise ValueError("an image contract needs height, width and channels")
        if len(self.mean) != len(self.std) or any(s == 0 for s in self.std):
            raise ValueError(f"normalization mean {self.mean} and std {self.std} must pair up, std non-zero")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputContract":
        d = dict(d)
        d["shape"] = tuple(d.get("shape", ()))
        d["pixel_range"] = tuple(d.get("pixel_range", (0.0, 255.0)))
        d["mean"], d["std"] = tuple(d.get("mean", ())), tuple(d.get("std", ()))
        return cls(**d)


#: Key of the metadata entry edgeport embeds in TFLite flatbuffers and ONNX ``metadata_props``:
#: a JSON object ``{"model", "labels", "input_contract"}``.
METADATA_KEY = "edgeport"
