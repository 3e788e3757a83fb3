"""Input dimensions and dtypes a Session needs beyond the batch contract (numpy only).

A model *has a batch axis* when every input's first axis is one shared batch axis: every input has
rank >= 1 and their first dimensions agree (all free, or all the same fixed size). A streaming model
with a scalar sample rate ``sr ()`` or a recurrent state ``(2, 1, 128)`` next to audio ``(1, 512)``
has none: its inputs are fed exactly as given, one call each. Symbolic dimension names (ONNX
``dim_param``: ``height``, ``width``) are kept per input so that messages can name them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgeport.errors import InputError
from edgeport.types import TensorSpec


def _free(d: Any) -> bool:
    return d is None or (isinstance(d, (int, np.integer)) and d < 0)


def has_batch_axis(specs: Sequence[TensorSpec]) -> bool:
    """Whether the inputs share one batch axis (axis 0): every rank >= 1 and first dims that agree."""
    if any(len(s.shape) == 0 for s in specs):
        return False
    firsts = {None if _free(s.shape[0]) else int(s.shape[0]) for s in specs}
    return len(firsts) <= 1


def dim_names(shape: Sequence[Any]) -> tuple[str | None, ...]:
    """The symbolic name of each dimension of an engine shape (``None`` for numbers and unnamed ones)."""
    return tuple(d if isinstance(d, str) and d else None for d in shape)


def fmt_dims(shape: Sequence[int | None], names: Sequence[str | None] = ()) -> str:
    """An exact shape (no batch axis implied): ``(2, 1, 128)``, ``()``, ``(1, 3, height, width)``."""
    dims = [str(d) if not _free(d) else ((names[i] if i < len(names) and names[i] else "?"))
            for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def matches_exactly(given: tuple[int, ...], shape: Sequence[int | None]) -> bool:
    """Whether ``given`` fits ``shape`` axis for axis (free dimensions take any size)."""
    return len(given) == len(shape) and all(_free(s) or g == s for g, s in zip(given, shape))


def cast_to_feed(arr: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    """``arr`` as an integer input's own dtype, refusing what the cast would change: a fractional or
    non-finite float, or a value outside the dtype's range (never a silent float32 round trip)."""
    if arr.dtype == dtype:
        return arr
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise InputError(f"{where}: an integer input ({dtype}) given {int(np.count_nonzero(bad))} value(s) "
                             f"that are not whole numbers (e.g. {float(arr[bad].ravel()[0])!r}); give integers")
    if arr.size and arr.dtype.kind in "iuf":
        info = np.iinfo(dtype)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise InputError(f"{where}: values {lo}..{hi} do not fit the input's {dtype} "
                             f"({info.min}..{info.max})")
    return arr.astype(dtype)


def unbatched_reason(keys: Sequence[str], specs: Sequence[TensorSpec],
                     names: dict[str, tuple[str | None, ...]]) -> str:
    """Why a model's inputs share no batch axis, listing each input's shape."""
    shapes = ", ".join(f"{k} {fmt_dims(s.shape, names.get(k, ()))}" for k, s in zip(keys, specs))
    return f"its inputs have no shared batch axis ({shapes}): they are fed exactly as given"
