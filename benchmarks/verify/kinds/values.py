"""``values``: anything that is no decision (regression, raw features): differences only, plus
``relative_error`` (mean |artifact - reference| / mean |reference|) and, with labels of the same
size, the mean absolute error against them (``mae``, the reference's, and the change). It is what a
regression model's outputs are, what an output of odd shape or with non-finite reference values is,
and what no other kind claims."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import Bound, GateField, Kind
from edgeport.export.registry import Precision
from edgeport.tables import fmt_num

MAX_RELATIVE = GateField("max_relative_error", "mean |artifact - reference| / mean |reference|",
                         {Precision.FP16: 1e-3, Precision.QUANTIZED: 0.02}, fraction=False)


def _odd(ref: np.ndarray, task: str) -> bool:
    """Step 2b: no rows to compare, non-finite reference values, or one column that is no probability."""
    return ref.ndim < 2 or not len(ref) or not bool(np.isfinite(ref).all()) or (ref.ndim == 2 and ref.shape[1] == 1)


class Values(Kind):
    name = "values"
    summary = "anything else (regression): differences only"
    rules = ((10, lambda ref, task: task == "regression"), (21, _odd))
    gate_fields = (MAX_RELATIVE,)
    bounds = (Bound("relative_error", MAX_RELATIVE.name, "<="),)
    worst_is_max = ("relative_error",)
    fix_figures = ("relative_error",)
    alternative_figures = ("relative_error",)

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        f["relative_error"] = (f["mean_abs_diff"] / max(float(np.abs(ref).mean()), 1e-12)
                               if f["finite"] else float("inf"))
        if y is not None and y.size == ref.size:
            y64 = y.reshape(ref.shape).astype(np.float64)
            f["mae"] = float(np.abs(out - y64).mean())
            f["keras_mae"] = float(np.abs(ref - y64).mean())
            f["mae_delta"] = f["mae"] - f["keras_mae"]
        return f

    def text(self, f: Mapping[str, Any]) -> str:
        return f"rel err {fmt_num(f.get('relative_error'), '.2e')}"


KIND = Values()
