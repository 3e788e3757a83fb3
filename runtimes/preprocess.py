"""What an image becomes before it is fed, stated (numpy only).

Pixels are read as 0-255. A model either takes them raw (edgeport's models: the scaling is inside),
or says how to normalise them in its standard TFLite Metadata (``(pixel - mean) / std``), or the
caller says with ``--normalize SCALE,MEAN,STD``: ``(pixel x SCALE - MEAN) / STD``. Each number is
one value for every channel or one per channel joined by ``:`` (``0.485:0.456:0.406``); SCALE may be
a fraction (``1/255``). A :class:`Normalize` maps 1:1 onto the input contract's fields (a pixel
range of ``0..255 x SCALE``, ``mean``, ``std``), so :func:`edgeport.runtimes.cli.load_image` does
the arithmetic and nothing else has to.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from edgeport.errors import InputError
from edgeport.types import InputContract

FLAG = "--normalize"
RAW = "raw 0-255 pixels"


def _number(text: str, what: str) -> float:
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{FLAG} {what}: {text!r} is not a number") from None


@dataclass(frozen=True)
class Normalize:
    """``(pixel x scale - mean) / std`` on 0-255 pixels; mean and std per channel or one for all."""

    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    source: str = FLAG

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"{FLAG}: SCALE must be a positive number, got {self.scale}")
        if not self.mean or not self.std or any(s == 0 or not np.isfinite(s) for s in self.std):
            raise InputError(f"{FLAG}: STD must be non-zero numbers, got {list(self.std)}")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise InputError(f"{FLAG}: MEAN {list(self.mean)} and STD {list(self.std)} differ in channels")

    @classmethod
    def parse(cls, text: str) -> "Normalize":
        """``"SCALE,MEAN,STD"``, e.g. ``1/255,0.5,0.5`` or ``1,127.5,127.5``."""
        parts = str(text).split(",")
        if len(parts) != 3:
            raise InputError(f"{FLAG} {text!r}: give SCALE,MEAN,STD (three numbers, MEAN and STD optionally per "
                             "channel joined by ':'), e.g. 1/255,0.5,0.5")
        scale, mean, std = parts
        return cls(_number(scale, "SCALE"), tuple(_number(v, "MEAN") for v in mean.split(":")),
                   tuple(_number(v, "STD") for v in std.split(":")))

    def contract(self, contract: InputContract) -> InputContract:
        """The image contract that feeds ``(pixel x scale - mean) / std``."""
        channels = max(len(self.mean), len(self.std))
        if channels > 1 and contract.channels and channels != contract.channels:
            raise InputError(f"{FLAG}: {channels} channel values for a model of {contract.channels} channels")
        channels = contract.channels or channels
        mean = self.mean * channels if len(self.mean) == 1 else self.mean
        std = self.std * channels if len(self.std) == 1 else self.std
        return replace(contract, pixel_range=(0.0, 255.0 * self.scale), mean=tuple(mean), std=tuple(std))

    def array(self, x: np.ndarray) -> np.ndarray:
        """An array of 0-255 pixels (channels last) as fed: float32."""
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return ((np.asarray(x, np.float32) * np.float32(self.scale) - mean) / std).astype(np.float32)


def stated(contract: InputContract | None, source: str) -> dict[str, Any]:
    """What an image became before it was fed: ``{"pixels", "scale", "mean", "std", "from", "text"}``."""
    if contract is None or contract.kind != "image":
        return {"from": source, "text": "inputs fed as given (not images: no pixel preprocessing)"}
    lo, hi = contract.pixel_range
    scale = (hi - lo) / 255.0
    record: dict[str, Any] = {"pixels": "0-255", "scale": scale, "offset": lo, "mean": list(contract.mean),
                              "std": list(contract.std), "from": source}
    if (lo, hi) == (0.0, 255.0) and not contract.mean:
        record["text"] = f"images fed as {RAW} ({source})"
        return record
    steps = "pixel" + (f" x {scale:.6g}" if scale != 1 else "") + (f" + {lo:g}" if lo else "")
    if contract.mean:
        steps = f"({steps} - mean {_short(contract.mean)}) / std {_short(contract.std)}"
    record["text"] = f"images fed as {steps} on 0-255 pixels ({source})"
    return record


def _short(values: tuple[float, ...]) -> str:
    vals = [f"{v:.6g}" for v in values]
    return vals[0] if len(set(vals)) == 1 else "[" + ", ".join(vals) + "]"


def normalize_feed(x: np.ndarray | dict[str, np.ndarray], normalize: str, where: str
                   ) -> tuple[np.ndarray | dict[str, np.ndarray], dict[str, Any]]:
    """``x`` (0-255 pixels of one input, from ``where``) as ``--normalize`` feeds it, and the record."""
    norm = Normalize.parse(normalize)
    if isinstance(x, dict):
        if len(x) != 1:
            raise InputError(f"{where}: {FLAG} normalises one image input; the data has {len(x)}: {sorted(x)}")
        key, arr = next(iter(x.items()))
        fed, record = normalize_feed(arr, normalize, where)
        return {key: fed}, record
    channels = max(len(norm.mean), len(norm.std))
    if channels > 1 and (x.ndim < 2 or x.shape[-1] != channels):
        raise InputError(f"{where}: {FLAG} gives {channels} channel values; the data's last axis is "
                         f"{x.shape[-1] if x.ndim else 'missing'} (channels last)")
    scale = f" x {norm.scale:.6g}" if norm.scale != 1 else ""
    text = (f"inputs fed as (value{scale} - mean {_short(norm.mean)}) / std {_short(norm.std)} "
            f"({FLAG} {normalize}, on the data as given)")
    record = {"pixels": "0-255", "scale": norm.scale, "offset": 0.0, "mean": list(norm.mean), "std": list(norm.std),
              "from": f"{FLAG} {normalize}", "text": text}
    return norm.array(x), record
