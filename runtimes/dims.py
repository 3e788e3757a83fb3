"""Input dimensions and dtypes a Session needs beyond the batch contract (numpy only).

A model *has a batch axis* when every input's first axis is one shared batch axis: every input has
rank >= 1 and their first dimensions agree (all free, or all the same fixed size). A streaming model
with a scalar sample rate ``sr ()`` or a recurrent state ``(2, 1, 128)`` next to audio ``(1, 512)``
has none: its inputs are fed exactly as given, one call each. Symbolic dimension names (ONNX
``dim_param``: ``height``, ``width``) are kept per input so that messages can name them.
"""
from __future__ import annotations

import math
import re
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


#: A dimension name a person can read and type back: a short identifier (``height``, ``batch_size``, ``N``).
_READABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,23}$")
#: Names converters generate, which say nothing (``unk__123``, ``P2O.DYNAMICDIMENSION.0``, ``DynamicDim0``).
_GENERATED = re.compile(r"^unk__\d+$|dynamic", re.IGNORECASE)


def readable_dim(d: Any) -> str | None:
    """A symbolic dimension's name if it is one a person can read, else None (then called ``dimAXIS``)."""
    return d if isinstance(d, str) and _READABLE.match(d) and not _GENERATED.search(d) else None


def dim_names(shape: Sequence[Any]) -> tuple[str | None, ...]:
    """The readable symbolic name of each dimension of an engine shape (``None`` for numbers, unnamed
    ones and converter-generated names such as ``P2O.DYNAMICDIMENSION.0`` or ``?``)."""
    return tuple(readable_dim(d) for d in shape)


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


_NAME_NOISE = re.compile(r"^(serving_default_)|(:\d+)$")


def tensor_key(name: str) -> str:
    """The user-facing name of an engine tensor: ``serving_default_image:0`` -> ``image``. One name
    alone: a model's inputs or outputs are named together by ``tensor_keys``."""
    return _NAME_NOISE.sub("", name)


def tensor_keys(names: Sequence[str]) -> list[str]:
    """The user-facing names of one model's inputs (or outputs), unique: ``tensor_key`` of each, except
    where two would collide (``a:0``, ``a:1`` -> ``a:0``, ``a:1``; only ``serving_default_`` goes), and
    the engine's own name where even that collides (engine names are unique within a graph)."""
    keys = [tensor_key(n) for n in names]
    for shorten in (lambda n: n.removeprefix("serving_default_"), str):
        taken = [k for i, k in enumerate(keys) if k in keys[:i] or k in keys[i + 1:]]
        keys = [shorten(n) if k in taken else k for n, k in zip(names, keys)]
    return keys


def fmt_shape(shape: Sequence[int | None]) -> str:
    """``(N, 28, 28, 1)``: the batch dimension is always free (engines with a fixed batch are
    resized or fed in chunks), other free dimensions print as ``?``."""
    dims = ["N" if i == 0 else ("?" if s is None or s < 0 else str(s)) for i, s in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def order_inputs(specs: list[TensorSpec], names: Any) -> list[TensorSpec]:
    """Reorder engine input specs into ``names`` order (the Keras model's input order, as the
    exporter records it in metadata) when the names match; otherwise keep the engine order."""
    if not isinstance(names, (list, tuple)) or len(names) != len(specs):
        return specs
    wanted = tensor_keys([n.get("name", "") if isinstance(n, dict) else str(n) for n in names])
    by_key = dict(zip(tensor_keys([s.name for s in specs]), specs))
    if sorted(wanted) != sorted(by_key):
        return specs
    return [by_key[k] for k in wanted]


def spec_shape(shape: Sequence[Any]) -> tuple[int | None, ...]:
    """Engine shape -> TensorSpec shape: -1, None or symbolic names become None."""
    return tuple(int(s) if isinstance(s, (int, np.integer)) and s >= 0 else None for s in shape)


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable; 1 GiB when it cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30


def _spec_bytes(spec: TensorSpec) -> int:
    """Bytes of one tensor at batch 1 (free dimensions count as 1)."""
    try:
        item = np.dtype(spec.dtype).itemsize
    except TypeError:  # an engine type numpy does not know (string tensors): count 8 bytes an element
        item = 8
    return item * math.prod(int(d) if d else 1 for d in spec.shape)


def _to_array(v: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: cannot make an array of the given {type(v).__name__}: {exc}") from None
    return arr


def _matches(given: tuple[int, ...], shape: tuple[int | None, ...]) -> bool:
    if len(given) != len(shape):
        return False
    return all(s is None or s < 0 or g == s for g, s in zip(given[1:], shape[1:]))


def _all_finite(arr: np.ndarray) -> bool:
    """True if no element is NaN or inf, in one BLAS dot for the common case.

    ``x . x`` is a sum of squares: NaN or inf anywhere makes it non-finite, and it cannot cancel.
    If it overflows on finite values (elements beyond ~1e19) the exact check decides.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(_vdot(arr, arr)) or bool(np.isfinite(arr).all())


_vdot = np.vdot


def shape_message(where: str, expected: str, given: tuple[int, ...], spec: TensorSpec) -> str:
    shape = spec.shape
    msg = f"{where}: expected shape {expected}, given {tuple(given)}"
    if len(given) == len(shape) - 1 and _matches((1, *given), shape):
        return msg + " (a single sample needs a batch axis: x[None])"
    if len(given) == 4 and len(shape) == 4:
        want_c, got_c = shape[3], given[3]
        if want_c is not None and got_c != want_c:
            hint = ""
            if given[1] == want_c and tuple(given[2:4]) == tuple(shape[1:3]):
                hint = "; the input looks channels-first (NCHW) but the model takes NHWC"
            return (f"{where}: expected {want_c} channel(s) (shape {expected}, NHWC), given "
                    f"{got_c} channel(s) in shape {tuple(given)}{hint}")
    return msg
