"""What a command feeds a model: a .npz keyed by input name, ``--input-shape NAME=1x3x320x320``, the
sizes of symbolic dimensions, seeded random inputs, a batch of a given size (numpy only).

One front door for ``edgeport run``, ``bench`` and the fuzzer: a multi-input, integer, scalar or
state input arrives by name with its own dtype, and every dimension edgeport fills is said.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import InputError
from edgeport.runtimes.base import Session, available_memory
from edgeport.runtimes.dims import fmt_dims

#: Keys that hold labels, not inputs, in a data .npz.
LABEL_KEYS = ("y_test", "y")
_SHAPE = re.compile(r"^\s*(?:(?P<name>[^=\s]+)\s*=\s*)?(?P<dims>[0-9]+(?:\s*[x,]\s*[0-9]+)*|\(\s*\))\s*$")


def split_arrays(arrays: dict[str, np.ndarray], source: str) -> tuple[np.ndarray | dict[str, np.ndarray],
                                                                       np.ndarray | None]:
    """(inputs, labels) of a data .npz's arrays: ``x_test``/``x`` (one input), ``x_test/NAME`` or
    ``x/NAME`` (one per input), or arrays named by the model's inputs themselves; ``y_test``/``y``."""
    yk = next((k for k in LABEL_KEYS if k in arrays), None)
    y = arrays[yk] if yk else None
    for prefix in ("x_test", "x"):
        if prefix in arrays:
            return arrays[prefix], y
        named = sorted(k for k in arrays if k.startswith(prefix + "/"))
        if named:
            return {k.split("/", 1)[1]: arrays[k] for k in named}, y
    named = {k: v for k, v in arrays.items() if k not in LABEL_KEYS}
    if not named:
        raise InputError(f"{source}: no input arrays (x_test, x, x_test/NAME, or one array per input name); "
                         f"has {sorted(arrays)}")
    return named, y


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a .npz (no pickles), or an InputError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such .npz file")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise InputError(f"{p}: a single .npy array, not a .npz keyed by input name")
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, TypeError) as exc:  # zip/npy parse errors
        raise InputError(f"{p}: not a readable .npz ({type(exc).__name__}: {str(exc)[:120]})") from None
    except Exception as exc:  # noqa: BLE001 - zipfile's BadZipFile, zlib.error, NotImplementedError ...
        raise InputError(f"{p}: not a readable .npz ({type(exc).__name__}: {str(exc)[:120]})") from None


def by_input(session: Session, x: Any, source: str) -> dict[str, np.ndarray]:
    """Data for ``session`` keyed by its input names; an InputError naming ``source`` and the model's
    inputs when the names do not match (one array is taken for a one-input model)."""
    keys = session._keys
    if isinstance(x, np.ndarray):
        if len(keys) != 1:
            raise InputError(f"{source}: one array for a model of {len(keys)} inputs; give a .npz keyed by its "
                             f"input names {keys}")
        return {keys[0]: x}
    given = {_key(k, keys): v for k, v in x.items()}
    missing, extra = [k for k in keys if k not in given], [k for k in given if k not in keys]
    if missing or extra:
        raise InputError(f"{source}: arrays {sorted(given)} do not match the inputs of {session.path.name}: "
                         f"{keys}" + (f" (missing {missing})" if missing else "")
                         + (f" (unknown {extra})" if extra else ""))
    return {k: given[k] for k in keys}


def _key(name: str, keys: list[str]) -> str:
    """A name the user gave: one of the model's ``keys`` as given, else its ``tensor_key``."""
    from edgeport.runtimes.base import tensor_key

    return str(name) if str(name) in keys else tensor_key(str(name))


def parse_input_shapes(items: list[str] | None, session: Session) -> dict[str, tuple[int, ...]]:
    """``["images=1x3x320x320"]`` -> {input: shape}, checked against the model: a known input, its
    rank, its fixed dimensions, a size this machine can hold. ``1x3x320x320`` alone names the only input."""
    out: dict[str, tuple[int, ...]] = {}
    keys, model = session._keys, session.path.name
    for item in items or []:
        m = _SHAPE.match(str(item))
        if m is None:
            raise InputError(f"--input-shape {item!r}: expected NAME=DIMxDIMx... (e.g. images=1x3x320x320, "
                             f"'sr=()' for a scalar); {model} takes {keys}")
        name, dims = m["name"], m["dims"]
        if name is None:
            if len(keys) != 1:
                raise InputError(f"--input-shape {item!r}: {model} has inputs {keys}; name one: NAME={dims}")
            name = keys[0]
        name = _key(name, keys)
        if name not in keys:
            raise InputError(f"--input-shape {item!r}: {model} has no input {name!r}; its inputs are {keys}")
        shape = tuple(int(d) for d in re.split(r"\s*[x,]\s*", dims.strip("() ")) if d)
        out[name] = _check_shape(item, name, shape, session)
    return out


def _check_shape(item: str, name: str, shape: tuple[int, ...], session: Session) -> tuple[int, ...]:
    i = session._keys.index(name)
    spec, model = session.inputs[i], session.path.name
    want = fmt_dims(spec.shape, session.dim_names.get(name, ()))
    if len(shape) != len(spec.shape):
        raise InputError(f"--input-shape {item!r}: input {name!r} of {model} has {len(spec.shape)} dimension(s) "
                         f"{want}, given {len(shape)}")
    for axis, (g, d) in enumerate(zip(shape, spec.shape)):
        if g < 1:
            raise InputError(f"--input-shape {item!r}: dimension {axis} is {g}; sizes are at least 1")
        batch_axis = axis == 0 and session.batched
        if d is not None and d >= 0 and g != d and not batch_axis:
            raise InputError(f"--input-shape {item!r}: dimension {axis} of {name!r} is fixed at {d} in {model} "
                             f"{want}, given {g}")
    need = math.prod(shape) * np.dtype(spec.dtype).itemsize
    if need > available_memory() // 4:
        raise InputError(f"--input-shape {item!r}: {need / 2**30:.1f} GiB for one input is more than this machine "
                         "can hold")
    return shape


def missing_dims_error(session: Session, free: list[tuple[str, int, str]], flag: str = "--input-shape",
                       data_flag: str = "--data-npz") -> InputError:
    """The one line that says which symbolic dimensions have no size and how to give them."""
    dims = ", ".join(f"{k}.{n}" for k, n in dict.fromkeys((k, n) for k, _, n in free))
    keys = list(dict.fromkeys(k for k, _, _ in free))
    example = " ".join(f"{k}={'x'.join(_example(session, k))}" for k in keys)
    concrete = " ".join(f"{k}={'x'.join(_concrete(session, k))}" for k in keys)
    return InputError(f"{session.path.name}: symbolic dimension(s) {dims} have no size: give {flag} {example} "
                      f"with your sizes, e.g. {flag} {concrete} (or data with {data_flag})")


def _concrete(session: Session, key: str) -> list[str]:
    """An ``--input-shape`` a person can type as it is: fixed sizes kept, a free axis 0 as 1, other
    free axes 224 for a 4-D (image-like) input and 16 otherwise."""
    shape = session.inputs[session._keys.index(key)].shape
    return [str(d) if d is not None and d >= 0 else ("1" if a == 0 else "224" if len(shape) == 4 else "16")
            for a, d in enumerate(shape)]


def _example(session: Session, key: str) -> list[str]:
    i = session._keys.index(key)
    names = session.dim_names.get(key, ())
    return [str(d) if d is not None and d >= 0 else "N" if a == 0 and session.batched
            else (names[a] if a < len(names) and names[a] else f"dim{a}").upper()
            for a, d in enumerate(session.inputs[i].shape)]


def resolve_shapes(session: Session, data: dict[str, np.ndarray] | None, given: dict[str, tuple[int, ...]],
                   *, flag: str = "--input-shape", data_flag: str = "--data-npz"
                   ) -> tuple[dict[str, tuple[int, ...]], list[str]]:
    """({input: shape of one feed (batch 1 for a batched model)}, notes saying each filled dimension and
    where its size came from): the data's shapes, else ``--input-shape``, else an error naming the
    symbolic dimensions and the flag. A free batch axis is 1 here (a series sets it)."""
    shapes, notes = {}, []
    free = {(k, a): n for k, a, n in session.free_dims()}
    unknown = []
    for i, key in enumerate(session._keys):
        if data is not None:
            arr = np.asarray(data[key])
            shape = (1, *arr.shape[1:]) if session.batched and arr.ndim else tuple(arr.shape)
            how = "the data"
            if key in given and tuple(given[key][1:] if session.batched else given[key]) != tuple(
                    shape[1:] if session.batched else shape):
                raise InputError(f"{flag} {key}={'x'.join(map(str, given[key]))} contradicts the data's "
                                 f"{key!r} of shape {tuple(arr.shape)}")
        elif key in given:
            shape, how = (1, *given[key][1:]) if session.batched else given[key], flag
        else:
            shape, how = session.sample_shape(i, 1), None
        filled = [f"{free[(key, a)]}={shape[a]}" for a in range(len(shape)) if (key, a) in free]
        if filled and how is None:
            unknown += [(key, a, free[(key, a)]) for a in range(len(shape)) if (key, a) in free]
        elif filled:
            notes.append(f"input {key!r}: {', '.join(filled)} from {how}")
        shapes[key] = tuple(int(d) for d in shape)
    if unknown:
        raise missing_dims_error(session, unknown, flag, data_flag)
    return shapes, notes


def random_feed(session: Session, shapes: dict[str, tuple[int, ...]], *, seed: int = 0,
                float_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, np.ndarray]:
    """Seeded inputs of ``shapes``: floats uniform in ``float_range``, integers in 0..9 of their own dtype."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec, key in zip(session.inputs, session._keys):
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iu" and not spec.quantized:
            out[key] = rng.integers(0, 10, shapes[key]).astype(dtype)
        elif dtype.kind == "b":
            out[key] = rng.integers(0, 2, shapes[key]).astype(bool)
        else:
            out[key] = rng.uniform(*float_range, shapes[key]).astype(np.float32)
    return out


def batch_of(session: Session, data: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray] | None:
    """``data`` as a batch of ``batch`` (rows repeated in order); None for a model without a batch
    axis at any size but 1 (its inputs are fed as they are)."""
    if not session.batched:
        return data if batch == 1 else None
    return {k: np.concatenate([v] * -(-batch // len(v)))[:batch] for k, v in data.items()}
