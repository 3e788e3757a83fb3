"""``embedding``: one vector per row (the last axis), compared by direction: ``cosine_min`` /
``cosine_mean`` of each row against the reference's row, and ``neighbour_agreement``: the fraction
of rows whose nearest other row (by cosine, within the batch) is the same in the artifact as in the
reference (None below 3 rows). Detected on rank-2 outputs whose every row has L2 norm 1."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import Bound, GateField, Kind
from edgeport.export.registry import Precision
from edgeport.tables import fmt_num, fmt_pct

MIN_COSINE = GateField("min_cosine", "the smallest cosine similarity of a row with the reference's row",
                       {Precision.FP16: 0.999, Precision.QUANTIZED: 0.95})
MIN_NEIGHBOURS = GateField("min_neighbour_agreement", "rows whose nearest other row is the reference's",
                           {Precision.FP16: 0.95, Precision.QUANTIZED: 0.9})


def _unit(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def _nearest(unit: np.ndarray) -> np.ndarray:
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def figures(ref: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    d = ref.shape[-1] if ref.ndim >= 2 else 1
    r = _unit(ref.reshape(-1, d).astype(np.float64))
    o = _unit(out.reshape(-1, d).astype(np.float64))
    cos = (r * o).sum(axis=1)
    f: dict[str, Any] = {"rows": int(len(r)), "cosine_min": float(cos.min()) if len(cos) else None,
                         "cosine_mean": float(cos.mean()) if len(cos) else None, "neighbour_agreement": None}
    if len(r) >= 3:
        f["neighbour_agreement"] = float((_nearest(r) == _nearest(o)).mean())
    return f


def _unit_rows(ref: np.ndarray, task: str) -> bool:
    return ref.ndim == 2 and bool(np.allclose(np.linalg.norm(ref.astype(np.float64), axis=1), 1.0, atol=1e-3))


class Embedding(Kind):
    name = "embedding"
    summary = "one vector per row, compared by direction"
    rules = ((60, _unit_rows),)
    gate_fields = (MIN_COSINE, MIN_NEIGHBOURS)
    bounds = (Bound("cosine_min", MIN_COSINE.name, ">="), Bound("neighbour_agreement", MIN_NEIGHBOURS.name, ">="))
    worst_is_min = ("cosine_min", "cosine_mean", "neighbour_agreement")
    fix_figures = ("cosine_min", "cosine_mean", "neighbour_agreement")
    alternative_figures = ("cosine_min",)

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        return {**f, **figures(ref, out)}

    def text(self, f: Mapping[str, Any]) -> str:
        return (f"cosine min {fmt_num(f.get('cosine_min'), '.4f')}, "
                f"neighbours {fmt_pct(f.get('neighbour_agreement'), 1)}")


KIND = Embedding()
