"""Reference outputs as one .npz (numpy only, readable on a Pi): what an artifact is held to.

Arrays: ``f32/NAME`` (float32 reference output NAME), ``f16/NAME`` (the fp16-weights reference),
optionally ``x`` or ``x/INPUT`` (the inputs) and ``y`` (labels); ``meta``: a JSON string with how
they were made (source model sha256, data sha256, float32 noise per output, engine, ...).
``verify`` caches one per model (``MODEL_DIR/reference_outputs.npz``); a Raspberry Pi bundle
carries one with its inputs (``reference.npz``) so that the device proves parity without TensorFlow.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.files import atomic_path
from edgeport import names

REFERENCE_FILE = names.REFERENCE_FILE


def write(dest: Path, *, f32: dict[str, np.ndarray], meta: dict[str, Any], f16: dict[str, np.ndarray] | None = None,
          x: np.ndarray | dict[str, np.ndarray] | None = None, y: np.ndarray | None = None) -> Path:
    arrays = {f"f32/{k}": v for k, v in f32.items()}
    arrays.update({f"f16/{k}": v for k, v in (f16 or {}).items()})
    if x is not None:
        arrays.update({"x": x} if isinstance(x, np.ndarray) else {f"x/{k}": v for k, v in x.items()})
    if y is not None:
        arrays["y"] = y
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays, meta=np.array(json.dumps(meta, default=str)))
    return dest


def read(path: Path) -> dict[str, Any]:
    """``{"f32": {...}, "f16": {...} or None, "x": ..., "y": ..., "meta": {...}}``; ValueError/OSError
    when the file is not one."""
    with np.load(path, allow_pickle=False) as z:
        files = z.files
        meta = json.loads(str(z["meta"]))
        f32 = {k[4:]: z[k] for k in files if k.startswith("f32/")}
        f16 = {k[4:]: z[k] for k in files if k.startswith("f16/")} or None
        x = z["x"] if "x" in files else ({k[2:]: z[k] for k in files if k.startswith("x/")} or None)
        y = z["y"] if "y" in files else None
    if not isinstance(meta, dict) or not f32:
        raise ValueError(f"{path}: no reference outputs in it")
    return {"f32": f32, "f16": f16, "x": x, "y": y, "meta": meta}
