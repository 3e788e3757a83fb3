"""``multilabel``: independent per-element probabilities (sigmoid maps of any rank: tags, an audio
model's per-frame events). Every element is a decision at ``decision_threshold`` (default 0.5):
``flip_rate`` (elements whose decision differs from the reference's), ``flips``, and precision /
recall / F1 of the artifact's positive elements against the reference's (None when neither has a
positive). The gate bounds the flip rate and F1."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import Bound, GateField, Kind, in01
from edgeport.export.registry import Precision
from edgeport.tables import fmt_num, fmt_pct

THRESHOLD = 0.5
MAX_FLIP_RATE = GateField("max_flip_rate", "fraction of elements whose decision at decision_threshold flips",
                          {Precision.FP16: 0.001, Precision.QUANTIZED: 0.005})
MIN_F1 = GateField("min_f1", "F1 of the artifact's positive elements against the reference's",
                   {Precision.FP16: 0.85, Precision.QUANTIZED: 0.8})
DECISION = GateField("decision_threshold", "where an element's decision flips", setting=THRESHOLD)


def figures(ref: np.ndarray, out: np.ndarray, *, threshold: float = THRESHOLD) -> dict[str, Any]:
    r, o = ref > threshold, out > threshold
    tp, fp, fn = int((r & o).sum()), int((~r & o).sum()), int((r & ~o).sum())
    flips = fp + fn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"threshold": threshold, "elements": int(r.size), "ref_positives": int(r.sum()), "flips": flips,
            "flip_rate": flips / r.size if r.size else None, "precision": precision, "recall": recall, "f1": f1}


class Multilabel(Kind):
    name = "multilabel"
    summary = "independent per-element probabilities (sigmoid maps of any rank)"
    rules = ((70, lambda ref, task: in01(ref) and ref[0].size >= 2),)
    gate_fields = (MAX_FLIP_RATE, MIN_F1, DECISION)
    bounds = (Bound("flip_rate", MAX_FLIP_RATE.name, "<=",
                    lambda g, b: f"<= {b:.3%} (decision at {g.decision_threshold:g})"),
              Bound("f1", MIN_F1.name, ">="))
    worst_is_max = ("flip_rate", "flips")
    worst_is_min = ("f1", "precision", "recall")
    fix_figures = ("flip_rate", "f1", "precision", "recall", "elements", "threshold")
    alternative_figures = ("f1", "flip_rate")
    percent_figures = ("f1", "flip_rate")

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        return {**f, **figures(ref, out, threshold=settings.get(DECISION.name, THRESHOLD))}

    def text(self, f: Mapping[str, Any]) -> str:
        return f"flips {fmt_pct(f.get('flip_rate'), 3)}, F1 {fmt_num(f.get('f1'), '.3f')}"


KIND = Multilabel()
