"""The test set a model is proved and shown on: its real dataset, or a user's .npz.

Which dataset: the manifest's or training.json's ``dataset``, else the course model's spec. A
``--data-npz FILE`` with ``x_test``/``y_test`` (or ``x``/``y``), ``x_test/NAME`` per input, or arrays
named by the model's inputs themselves (``audio``, ``state``, ``sr``) replaces it (small tests, models
edgeport does not know). Arrays that share no first axis (a scalar, a state tensor) are one feed,
given whole. Inputs stay raw (0-255 pixels): scaling is inside every artifact.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import DataError, EdgeportError, InputError
from edgeport.training_record import load_training_record


#: The task of data that says none: no labels, no class names, nothing given (no output is read as a classifier's).
UNKNOWN_TASK = "unknown"


@dataclass
class TestSet:
    __test__ = False  # not a pytest class

    x: np.ndarray | dict[str, np.ndarray]  # one array, or one per input name
    y: np.ndarray | None
    labels: tuple[str, ...]
    task: str  # "classification" | "regression" | UNKNOWN_TASK (a bare artifact's .npz without labels)
    source: str
    dataset: str
    #: One feed given whole (inputs that share no batch axis: a scalar, a state tensor), not N samples.
    whole: bool = False

    def __len__(self) -> int:
        if self.whole:
            return 1
        return len(self.x) if isinstance(self.x, np.ndarray) else len(next(iter(self.x.values())))

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        xs = [self.x] if isinstance(self.x, np.ndarray) else [self.x[k] for k in sorted(self.x)]
        for arr in (*xs, self.y):
            if arr is not None:
                h.update(str((arr.shape, arr.dtype.str)).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "source": self.source, "n": len(self), "task": self.task,
                "sha256": self.fingerprint()}


def _spec(name: str):
    try:
        from edgeport.training.models import MODELS
    except ImportError:  # pragma: no cover - training stage not installed (a Pi)
        return None
    return MODELS.get(name)


def _from_npz(path: Path) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray | None]:
    """``x_test``/``x`` (one input), ``x_test/NAME``/``x/NAME`` or plain input names (one array per
    input), and ``y_test``/``y`` when the data is labelled (read as ``edgeport run`` reads a .npz)."""
    from edgeport.runtimes.feeds import read_npz, split_arrays

    try:
        return split_arrays(read_npz(path), str(path))
    except InputError as exc:
        raise DataError(str(exc)) from None


def is_whole(x: np.ndarray | dict[str, np.ndarray]) -> bool:
    """Whether arrays by input name are one feed (a scalar among them, or first axes that differ)."""
    if isinstance(x, np.ndarray):
        return x.ndim == 0
    return any(v.ndim == 0 for v in x.values()) or len({v.shape[0] for v in x.values()}) > 1


def _length(x: np.ndarray | dict[str, np.ndarray]) -> int:
    return len(x) if isinstance(x, np.ndarray) else len(next(iter(x.values())))


def npz_testset(path: str | Path, *, labels: tuple[str, ...] = (), task: str | None = None,
                limit: int | None = None) -> TestSet:
    """A user's .npz as a test set (bare artifacts, bundles, models edgeport does not know)."""
    x, y = _from_npz(Path(path))
    return _finish(x, y, labels, task or _task(None, y), str(path), "npz", limit)


def _finish(x, y, labels, task: str, source: str, dataset: str, limit: int | None) -> TestSet:
    if limit is not None and limit < 1:
        raise EdgeportError(f"--limit must be at least 1, got {limit}")
    if is_whole(x):
        if y is not None and y.ndim and len(y) != 1:
            raise DataError(f"{source}: one feed given whole (its inputs share no first axis) but {len(y)} labels")
        return TestSet(x=x, y=y, labels=tuple(labels), task=task, source=source, dataset=dataset, whole=True)
    n = _length(x)
    if y is not None and len(y) != n:
        raise DataError(f"{source}: {n} test inputs but {len(y)} labels")
    if n == 0:
        raise DataError(f"{source}: the test set is empty")
    if limit is not None:
        x = x[:limit] if isinstance(x, np.ndarray) else {k: v[:limit] for k, v in x.items()}
        y = y[:limit] if y is not None else None
    return TestSet(x=x, y=y, labels=tuple(labels), task=task, source=source, dataset=dataset)


def _task(spec, y: np.ndarray | None) -> str:
    if spec is not None:
        return spec.task
    return "regression" if y is not None and y.dtype.kind == "f" else "classification"


def load_testset(model_dir: str | Path, manifest: dict[str, Any], *, data_dir: str | None = None,
                 data_npz: str | None = None, limit: int | None = None) -> TestSet:
    """The model's full test set (or its first ``limit`` samples)."""
    model_dir = Path(model_dir)
    record = load_training_record(model_dir)
    name = manifest.get("model") or record.get("model") or model_dir.name
    spec = _spec(name)
    labels = tuple(manifest.get("labels") or record.get("labels") or (spec.labels if spec else ()))
    if data_npz or manifest.get("data_file"):  # the user's, or the proof inputs a conversion kept
        data_npz = data_npz or str(model_dir / manifest["data_file"])
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
        kwargs = {}
        contract = manifest.get("input_contract") or {}
        if dataset == "image_folder" and contract.get("height"):  # the model's own input size
            kwargs["image_size"] = (int(contract["height"]), int(contract["width"]))
        from edgeport.native_log import quiet

        with quiet(f"load {dataset} test set"):  # an image folder loads through TensorFlow
            ds = load_dataset(dataset, data_dir, **kwargs)
        x, y, source = ds.x_test, ds.y_test, ds.source
        labels = labels or tuple(ds.labels)
    return _finish(x, y, labels, manifest.get("task") or _task(spec, y), source, dataset, limit)
