"""The test set a model is proved and shown on: its real dataset, or a user's .npz.

Which dataset: the manifest's or training.json's ``dataset``, else the course model's spec. A
``--data-npz FILE`` with ``x_test``/``y_test`` (or ``x``/``y``) replaces it (small tests, models
edgeport does not know). Inputs stay raw (0-255 pixels): scaling is inside every artifact.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import DataError, EdgeportError


@dataclass
class TestSet:
    __test__ = False  # not a pytest class

    x: np.ndarray
    y: np.ndarray | None
    labels: tuple[str, ...]
    task: str  # "classification" | "regression"
    source: str
    dataset: str

    def __len__(self) -> int:
        return len(self.x)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for arr in (self.x, self.y):
            if arr is not None:
                h.update(str((arr.shape, arr.dtype.str)).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "source": self.source, "n": len(self), "task": self.task,
                "sha256": self.fingerprint()}


def _training_record(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "training.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _spec(name: str):
    try:
        from edgeport.training.models import MODELS
    except ImportError:  # pragma: no cover - training stage not installed (a Pi)
        return None
    return MODELS.get(name)


def _from_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk = "x_test" if "x_test" in keys else "x"
            yk = "y_test" if "y_test" in keys else ("y" if "y" in keys else None)
            if xk not in keys:
                raise DataError(f"{path}: no x_test (or x) array; has {sorted(keys)}")
            return z[xk], (z[yk] if yk else None)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable .npz ({exc})") from None


def _task(spec, y: np.ndarray | None) -> str:
    if spec is not None:
        return spec.task
    return "regression" if y is not None and y.dtype.kind == "f" else "classification"


def load_testset(model_dir: str | Path, manifest: dict[str, Any], *, data_dir: str | None = None,
                 data_npz: str | None = None, limit: int | None = None) -> TestSet:
    """The model's full test set (or its first ``limit`` samples)."""
    model_dir = Path(model_dir)
    if limit is not None and limit < 1:
        raise EdgeportError(f"--limit must be at least 1, got {limit}")
    record = _training_record(model_dir)
    name = manifest.get("model") or record.get("model") or model_dir.name
    spec = _spec(name)
    labels = tuple(manifest.get("labels") or record.get("labels") or (spec.labels if spec else ()))
    if data_npz:
        x, y = _from_npz(Path(data_npz))
        dataset, source = "npz", str(data_npz)
    else:
        dataset = manifest.get("dataset") or record.get("dataset") or (spec.dataset if spec else None)
        if not dataset:
            raise DataError(f"{model_dir}: no dataset known for model {name!r} (no training.json, not a "
                            "course model); pass --data-npz FILE with x_test and y_test arrays")
        from edgeport.training.data import load_dataset

        if dataset == "image_folder" and data_dir is None:
            data_dir = record.get("data_source")
        ds = load_dataset(dataset, data_dir)
        x, y, source = ds.x_test, ds.y_test, ds.source
        labels = labels or tuple(ds.labels)
    if y is not None and len(y) != len(x):
        raise DataError(f"{source}: {len(x)} test inputs but {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{source}: the test set is empty")
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    return TestSet(x=x, y=y, labels=labels, task=_task(spec, y), source=source, dataset=dataset)
