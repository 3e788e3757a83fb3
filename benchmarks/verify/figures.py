"""Parity figures of one output of an artifact against the same output of the reference (numpy only).

The output's kind (``kinds/``: detected from the reference, or named by the user) decides which
figures exist. Every kind gets ``finite``, ``max_abs_diff``, ``mean_abs_diff`` and
``max_scaled_diff`` (the diff over max(1, largest |reference|)); the kind's module adds its own
(a classifier's agreement and KL divergence, multilabel flips, embedding cosines, detection recall,
a regression's relative error, ...).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify import kinds

__all__ = ["compare", "output_kind", "top1"]

output_kind = kinds.detect  # the detected kind of one reference output


def top1(out: np.ndarray, kind: str) -> np.ndarray:
    """The top-1 class per row of a classifier output of ``kind``."""
    return kinds.get(kind).top1(out)


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
            margin: float | None = None, settings: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Figures of ``out`` against ``ref`` (same shape) for an output of ``kind``; ``settings`` (a
    gate's ``Gate.settings()``) say how the kind's figures are measured (decision, detection
    thresholds, a classifier's confidence margin; ``margin``, when given, is that margin)."""
    if out.shape != ref.shape:
        raise ValueError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
    k = kinds.get(kind)
    f = _diffs(ref, out)
    f["kind"] = kind
    return k.figures(ref, out, f, y=y, settings=dict(settings or {}), margin=margin)
