"""Parity figures of one artifact's outputs against the Keras outputs, and the cached reference.

Classification: max/mean |diff|, top-1 agreement, accuracy and its change in points. Regression
(celsius-like): max/mean |diff|, the max diff scaled by the output magnitude, the relative error
and the mean absolute error against the true values; agreement and accuracy do not apply.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.benchmarks.verify.testdata import TestSet
from edgeport.errors import IntegrityError
from edgeport.files import sha256_file

REFERENCE_FILE = "reference_outputs.npz"
BATCH = 500


def first_output(out: Any) -> np.ndarray:
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, dtype=np.float32)


def predict_batched(session, x: np.ndarray, *, batch: int = BATCH,
                    on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """The session's outputs for every row of ``x``, ``batch`` rows at a time."""
    parts = []
    for start in range(0, len(x), batch):
        parts.append(first_output(session.predict(x[start:start + batch])))
        if on_batch:
            on_batch(min(start + batch, len(x)))
    return np.concatenate(parts)


def top1(out: np.ndarray) -> np.ndarray:
    out = out.reshape(len(out), -1)
    return (out[:, 0] > 0.5).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)


def figures(ref: np.ndarray, out: np.ndarray, test: TestSet) -> dict[str, Any]:
    """The parity figures of ``out`` against the Keras ``ref`` on ``test``."""
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from the Keras output shape {ref.shape}")
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    finite = bool(np.isfinite(out).all())
    f: dict[str, Any] = {"n": int(len(out)), "finite": finite,
                         "max_abs_diff": float(diff.max()) if finite else float("inf"),
                         "mean_abs_diff": float(diff.mean()) if finite else float("inf")}
    if test.task == "regression":
        scale = max(1.0, float(np.abs(ref).max()))
        f["max_scaled_diff"] = f["max_abs_diff"] / scale
        f["relative_error"] = f["mean_abs_diff"] / max(float(np.abs(ref).mean()), 1e-12)
        if test.y is not None:
            y = test.y.reshape(out.shape).astype(np.float64)
            f["mae"] = float(np.abs(out - y).mean())
            f["keras_mae"] = float(np.abs(ref - y).mean())
            f["mae_delta"] = f["mae"] - f["keras_mae"]
        return f
    pred, ref_pred = top1(out), top1(ref)
    f["agreement"] = float((pred == ref_pred).mean())
    f["disagreements"] = int((pred != ref_pred).sum())
    if test.y is not None:
        y = test.y.reshape(-1).astype(np.int64)
        f["accuracy"] = float((pred == y).mean())
        f["keras_accuracy"] = float((ref_pred == y).mean())
        f["accuracy_delta_points"] = 100.0 * (f["accuracy"] - f["keras_accuracy"])
    return f


def keras_file(model_dir: Path, manifest: dict[str, Any]) -> tuple[Path, str]:
    """The exported-from Keras model and its sha256; refused when it is not the one the manifest records."""
    source = manifest.get("source") or {}
    path = model_dir / Path(source.get("file") or "model.keras").name
    if not path.exists():
        raise IntegrityError(f"{path}: the Keras model the artifacts were exported from is missing")
    actual, expected = sha256_file(path), source.get("sha256")
    if expected and actual != expected:
        raise IntegrityError(f"{path}: differs from the model the artifacts were exported from "
                             "(sha256 mismatch with the manifest); re-export before verifying")
    return path, actual


def reference_outputs(model_dir: Path, manifest: dict[str, Any], test: TestSet, *,
                      on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, bool]:
    """Keras outputs on ``test``, computed once and cached beside the model, keyed by both the
    model's and the data's sha256. Returns (outputs, whether they came from the cache)."""
    path, sha256 = keras_file(model_dir, manifest)
    key = {"model_sha256": sha256, "data_sha256": test.fingerprint(), "n": len(test)}
    cache = model_dir / REFERENCE_FILE
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if json.loads(str(z["key"])) == key:
                    return z["outputs"], True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale cache: recompute
    from edgeport.runtimes import load

    session = load(path, runtime="keras")
    outputs = predict_batched(session, test.x, on_batch=on_batch)
    from edgeport.files import atomic_path

    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, outputs=outputs, key=np.array(json.dumps(key)))
    return outputs, False


def load_reference(model_dir: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cached Keras outputs and their key (model and data sha256), if verify has run."""
    try:
        with np.load(Path(model_dir) / REFERENCE_FILE, allow_pickle=False) as z:
            return z["outputs"], json.loads(str(z["key"]))
    except (OSError, ValueError, KeyError):
        return None
