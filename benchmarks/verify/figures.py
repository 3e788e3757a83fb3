"""Parity figures of one output of an artifact against the same output of the reference (numpy only).

The output's kind (``kinds.py``: detected from the reference, or named by the user) decides which
figures exist. Every kind gets ``finite``, ``max_abs_diff``, ``mean_abs_diff`` and
``max_scaled_diff`` (the diff over max(1, largest |reference|)). Single-label classifier kinds
(probabilities, binary, scores) add top-1 ``agreement``, agreement on *confident* inputs (the
reference's top-1 margin above ``margin``), the mean KL divergence of the artifact's distribution
from the reference's, top-5 overlap (six classes or more) and, with labels, ``accuracy`` and its
change in points. ``per_position`` gets the same agreement / confident agreement / KL figures over
every position of the last axis; ``multilabel`` and ``embedding`` get ``task_figures.py``'s;
``detections`` get ``detections.py``'s; ``values`` add ``relative_error``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify import detections, task_figures
from edgeport.benchmarks.verify.kinds import (BINARY, CLASSIFIER_KINDS, DETECTIONS, EMBEDDING, KINDS, MULTILABEL,
                                              PER_POSITION, PROBABILITIES, SCORES, VALUES, detect)

__all__ = ["BINARY", "CLASSIFIER_KINDS", "DETECTIONS", "EMBEDDING", "KINDS", "MULTILABEL", "PER_POSITION",
           "PROBABILITIES", "SCORES", "VALUES", "compare", "output_kind", "top1"]
DEFAULT_MARGIN = 0.2
KL_EPS = 1e-7


output_kind = detect  # the detected kind of one reference output (kinds.py)


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
            margin: float = DEFAULT_MARGIN, settings: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Figures of ``out`` against ``ref`` (same shape) for an output of ``kind``; ``settings`` (a
    gate's ``Gate.settings()``) gives the decision threshold and the detection thresholds."""
    if out.shape != ref.shape:
        raise ValueError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}; kinds: {', '.join(KINDS)}")
    s = dict(settings or {})
    f = _diffs(ref, out)
    f["kind"] = kind
    if kind == PER_POSITION:
        c = ref.shape[-1]
        rows = compare(ref.reshape(-1, c), out.reshape(-1, c), kind=PROBABILITIES, margin=margin)
        keep = ("agreement", "disagreements", "confidence_margin", "confident_n", "confident_agreement",
                "kl_divergence", "top5_overlap")
        return {**f, "positions": int(ref.size // c), **{k: rows[k] for k in keep if k in rows}}
    if kind == MULTILABEL:
        return {**f, **task_figures.multilabel(ref, out, threshold=s.get("decision_threshold", 0.5))}
    if kind == EMBEDDING:
        return {**f, **task_figures.embedding(ref, out)}
    if kind == DETECTIONS:
        if not f["finite"]:
            return f
        return {**f, **detections.figures(ref, out, **{k: s[k] for k in ("score_threshold", "nms_iou", "match_iou")
                                                         if k in s})}
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
