"""Quantized tensors at the session boundary: raw values in, integers to the engine, floats out.

``quantize``/``dequantize`` are the reference formulas; :class:`Quantizer` and :class:`Dequantizer`
are the precomputed per-tensor versions every session uses on its hot path (a few ufuncs on one
scratch buffer; a 256-entry table for 8-bit outputs). NumPy only.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeport.types import TensorSpec

#: dtypes a quantized tensor may have, with their clip range.
QUANT_RANGES: dict[str, tuple[int, int]] = {
    "uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767)}


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str | np.dtype) -> np.ndarray:
    """``q = clip(round(x / scale) + zero_point)`` in ``dtype`` (uint8, int8 or int16)."""
    lo, hi = QUANT_RANGES[np.dtype(dtype).name]
    q = np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, lo, hi).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``x = (q - zero_point) * scale`` as float32."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


try:  # the clip ufunc itself: np.clip's Python wrapper costs microseconds per call
    from numpy._core.umath import clip as _clip_ufunc
except ImportError:  # pragma: no cover - NumPy 1.x
    try:
        from numpy.core.umath import clip as _clip_ufunc
    except ImportError:
        _clip_ufunc = None


def _clip(buf: np.ndarray, lo: Any, hi: Any) -> None:
    if _clip_ufunc is not None:
        _clip_ufunc(buf, lo, hi, out=buf)
    else:  # pragma: no cover
        np.maximum(buf, lo, out=buf)
        np.minimum(buf, hi, out=buf)


class Quantizer:
    """Precomputed ``clip(round(x / scale) + zero_point)`` for one input tensor: a few ufuncs on
    one scratch buffer (steps that are no-ops for scale 1 or zero point 0 are skipped)."""

    __slots__ = ("inv_scale", "zp", "lo", "hi", "dtype")

    def __init__(self, spec: TensorSpec):
        scale, zp = float(spec.scale), int(spec.zero_point or 0)
        self.inv_scale = None if scale == 1.0 else np.float32(1.0 / scale)
        self.zp = np.float32(zp) if zp else None
        self.lo, self.hi = (np.float32(v) for v in QUANT_RANGES[spec.dtype])
        self.dtype = np.dtype(spec.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.inv_scale is None:
            buf = np.rint(x, dtype=np.float32)
        else:
            buf = np.multiply(x, self.inv_scale, dtype=np.float32)
            np.rint(buf, out=buf)
        if self.zp is not None:
            np.add(buf, self.zp, out=buf)
        _clip(buf, self.lo, self.hi)
        return buf.astype(self.dtype)


class Dequantizer:
    """``(q - zero_point) * scale`` as float32; a 256-entry table for 8-bit tensors."""

    __slots__ = ("scale", "zp", "table", "as_bytes")

    def __init__(self, spec: TensorSpec):
        self.scale, self.zp = np.float32(spec.scale), np.float32(spec.zero_point or 0)
        dtype = np.dtype(spec.dtype)
        self.table = None
        self.as_bytes = dtype == np.int8
        if dtype.itemsize == 1:
            codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
            self.table = ((codes - self.zp) * self.scale).astype(np.float32)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self.table is not None:
            return self.table.take(q.view(np.uint8) if self.as_bytes else q)
        return (q.astype(np.float32) - self.zp) * self.scale
