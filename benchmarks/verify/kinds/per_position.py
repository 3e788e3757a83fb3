"""``per_position``: a distribution over the last axis at every position ([B, T, C], [B, H, W, C]):
a sequence tagger, a segmentation map. Its figures and gate are a classifier's (agreement, confident
agreement, KL divergence, top-5 overlap) over every position, plus how many positions there are;
there is no accuracy (labels are per input, not per position)."""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import Check, Kind, Need
from edgeport.benchmarks.verify.kinds.classifier import DISTRIBUTION_FIGURES, PROBABILITIES, is_distribution


class PerPosition(Kind):
    name = "per_position"
    summary = "a distribution over the last axis at every position"
    rules = ((31, lambda ref, task: ref.ndim >= 3 and is_distribution(ref)),)
    worst_is_max = PROBABILITIES.worst_is_max
    worst_is_min = PROBABILITIES.worst_is_min
    fix_figures = (*PROBABILITIES.fix_figures, "positions")
    rank_by = PROBABILITIES.rank_by
    alternative_figures = PROBABILITIES.alternative_figures
    percent_figures = PROBABILITIES.percent_figures

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        c = ref.shape[-1]
        rows = PROBABILITIES.figures(ref.reshape(-1, c), out.reshape(-1, c), {"finite": f["finite"]}, y=None,
                                     settings=settings, margin=margin)
        return {**f, "positions": int(ref.size // c), **{k: rows[k] for k in DISTRIBUTION_FIGURES if k in rows}}

    def checks(self, gate: Any, need: Need, *, labelled: bool) -> Iterator[Check]:
        yield from PROBABILITIES.checks(gate, need, labelled=False)

    def text(self, f: Mapping[str, Any]) -> str:
        return f"{f.get('positions', 0):,} positions"


KIND = PerPosition()
