"""Task figures of the multilabel and embedding kinds (numpy only).

- multilabel: every element is a decision at ``threshold`` (default 0.5): ``flip_rate`` (elements
  whose decision differs from the reference's), ``flips``, and precision / recall / F1 of the
  artifact's positive elements against the reference's (None when neither has a positive);
- embedding: rows are the last axis; ``cosine_min`` / ``cosine_mean`` of each row against the
  reference's row, and ``neighbour_agreement``: the fraction of rows whose nearest other row (by
  cosine, within the batch) is the same in the artifact as in the reference (None below 3 rows).
"""
from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD = 0.5


def multilabel(ref: np.ndarray, out: np.ndarray, *, threshold: float = THRESHOLD) -> dict[str, Any]:
    r, o = ref > threshold, out > threshold
    tp, fp, fn = int((r & o).sum()), int((~r & o).sum()), int((r & ~o).sum())
    flips = fp + fn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"threshold": threshold, "elements": int(r.size), "ref_positives": int(r.sum()), "flips": flips,
            "flip_rate": flips / r.size if r.size else None, "precision": precision, "recall": recall, "f1": f1}


def _unit(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def _nearest(unit: np.ndarray) -> np.ndarray:
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def embedding(ref: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    d = ref.shape[-1] if ref.ndim >= 2 else 1
    r = _unit(ref.reshape(-1, d).astype(np.float64))
    o = _unit(out.reshape(-1, d).astype(np.float64))
    cos = (r * o).sum(axis=1)
    f: dict[str, Any] = {"rows": int(len(r)), "cosine_min": float(cos.min()) if len(cos) else None,
                         "cosine_mean": float(cos.mean()) if len(cos) else None, "neighbour_agreement": None}
    if len(r) >= 3:
        f["neighbour_agreement"] = float((_nearest(r) == _nearest(o)).mean())
    return f
