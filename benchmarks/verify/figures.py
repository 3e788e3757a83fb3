"""Parity figures of one output of an artifact against the same output of the reference (numpy only).

What an output is decides which figures exist:

- ``probabilities``: rows of >= 2 non-negative values summing to 1 (softmax);
- ``binary``: one value in [0, 1] per input (sigmoid) of a classifier;
- ``scores``: rows of >= 2 values of a classifier that are not normalised (logits);
- ``values``: anything else (regression, detector boxes): differences only.

Every kind gets ``finite``, ``max_abs_diff``, ``mean_abs_diff`` and ``max_scaled_diff`` (the diff
over max(1, largest |reference|)). Classifier kinds add top-1 ``agreement``, agreement on
*confident* inputs (the reference's top-1 margin above ``margin``), the mean KL divergence of the
artifact's distribution from the reference's, top-5 overlap (six classes or more) and, with
labels, ``accuracy`` and its change in points. ``values`` add ``relative_error``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

PROBABILITIES, BINARY, SCORES, VALUES = "probabilities", "binary", "scores", "values"
CLASSIFIER_KINDS = (PROBABILITIES, BINARY, SCORES)
DEFAULT_MARGIN = 0.2
KL_EPS = 1e-7


def output_kind(ref: np.ndarray, task: str) -> str:
    """The kind of one reference output (see the module docstring)."""
    if task == "regression":
        return VALUES
    rows = ref.reshape(len(ref), -1) if len(ref) else ref.reshape(0, 1)
    if rows.shape[1] == 1:
        inside = bool(np.isfinite(rows).all() and rows.min(initial=0) >= 0 and rows.max(initial=0) <= 1)
        return BINARY if inside and task == "classification" else VALUES
    if not np.isfinite(rows).all():
        return VALUES
    if rows.min() >= -1e-6 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        return PROBABILITIES
    return SCORES if task == "classification" else VALUES


def distribution(out: np.ndarray, kind: str) -> np.ndarray:
    """(N, classes) probabilities of a classifier output of ``kind``."""
    rows = out.reshape(len(out), -1).astype(np.float64)
    if kind == BINARY:
        p = np.clip(rows[:, :1], 0.0, 1.0)
        return np.concatenate([1.0 - p, p], axis=1)
    if kind == SCORES:
        z = rows - rows.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return rows


def top1(out: np.ndarray, kind: str) -> np.ndarray:
    rows = out.reshape(len(out), -1)
    return (rows[:, 0] > 0.5).astype(np.int64) if kind == BINARY else rows.argmax(axis=1)


def margins(dist: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per input."""
    if dist.shape[1] < 2:
        return np.ones(len(dist))
    part = np.sort(dist, axis=1)[:, -2:]
    return part[:, 1] - part[:, 0]


def _diffs(ref: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    finite = bool(np.isfinite(out).all())
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    f: dict[str, Any] = {"n": int(len(out)), "finite": finite,
                         "nonfinite_values": int(np.count_nonzero(~np.isfinite(out))),
                         "max_abs_diff": float(diff.max(initial=0.0)) if finite else float("inf"),
                         "mean_abs_diff": float(diff.mean()) if finite and diff.size else
                         (0.0 if finite else float("inf")),
                         "ref_max_abs": float(np.abs(ref).max(initial=0.0))}
    f["max_scaled_diff"] = f["max_abs_diff"] / scale
    return f


def compare(ref: np.ndarray, out: np.ndarray, *, kind: str, y: np.ndarray | None = None,
            margin: float = DEFAULT_MARGIN) -> dict[str, Any]:
    """Figures of ``out`` against ``ref`` (same shape) for an output of ``kind``."""
    if out.shape != ref.shape:
        raise ValueError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
    f = _diffs(ref, out)
    f["kind"] = kind
    if kind == VALUES:
        f["relative_error"] = (f["mean_abs_diff"] / max(float(np.abs(ref).mean()), 1e-12)
                               if f["finite"] else float("inf"))
        if y is not None and y.size == ref.size:
            y64 = y.reshape(ref.shape).astype(np.float64)
            f["mae"] = float(np.abs(out - y64).mean())
            f["keras_mae"] = float(np.abs(ref - y64).mean())
            f["mae_delta"] = f["mae"] - f["keras_mae"]
        return f
    pred, ref_pred = top1(out, kind), top1(ref, kind)
    same = pred == ref_pred
    f["agreement"] = float(same.mean()) if len(same) else None
    f["disagreements"] = int((~same).sum())
    p_ref = distribution(ref, kind)
    confident = margins(p_ref) > margin
    f["confidence_margin"] = margin
    f["confident_n"] = int(confident.sum())
    f["confident_agreement"] = float(same[confident].mean()) if confident.any() else None
    if f["finite"]:
        p_out = np.clip(distribution(out, kind), KL_EPS, 1.0)
        p_in = np.clip(p_ref, KL_EPS, 1.0)
        kl = float(np.mean(np.sum(p_in * (np.log(p_in) - np.log(p_out)), axis=1)))
        f["kl_divergence"] = max(kl, 0.0)  # rounding can leave a tiny negative for identical rows
        if p_ref.shape[1] >= 6:
            k = 5
            a, b = np.argsort(-p_ref, axis=1)[:, :k], np.argsort(-p_out, axis=1)[:, :k]
            f["top5_overlap"] = float(np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)]))
    else:
        f["kl_divergence"] = float("inf")
    if y is not None:
        labels = y.reshape(-1).astype(np.int64)
        if len(labels) == len(pred):
            f["accuracy"] = float((pred == labels).mean())
            f["keras_accuracy"] = float((ref_pred == labels).mean())
            f["accuracy_delta_points"] = 100.0 * (f["accuracy"] - f["keras_accuracy"])
    return f
