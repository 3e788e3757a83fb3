"""Reader for the original MNIST/Fashion-MNIST idx files (optionally gzipped), with validation."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from edgeport.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path, *, expect_ndim: int | None = None) -> np.ndarray:
    """Read an idx file, checking the magic number, dimensions and that the payload is complete."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt or truncated, "
                        "reinstall the data") from None
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an idx header; file is truncated")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: bad idx magic number 0x{raw[:4].hex()} (expected 0x0000080N); "
                        "not an idx file")
    if expect_ndim is not None and ndim != expect_ndim:
        raise DataError(f"{path}: idx file has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[dtype_code])
    need = int(np.prod(dims)) * dtype.itemsize
    have = len(raw) - header
    if have != need:
        what = "truncated" if have < need else "has trailing bytes"
        raise DataError(f"{path}: idx payload is {have} bytes but dims {dims} need {need}; file {what}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an idx file (gzipped if the name ends in .gz). Used by tests and tools."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(payload)
    return path
