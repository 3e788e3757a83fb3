"""Bounds and verdict of `edgeport fix`: a time and candidate budget for the search, the float
fraction of a candidate, and the "int8 does not fit" verdict with the cause and the alternatives."""
from __future__ import annotations

import time
from typing import Any

from edgeport.export import registry

#: Default seconds one `edgeport fix` may search (all formats together) and candidates per format.
MAX_SECONDS, MAX_CANDIDATES = 180.0, 24
#: A cheapest passing candidate with more of its weights in float than this is no int8 fix.
DEFAULT_MAX_FLOAT_FRACTION = 0.25


class Budget:
    """Seconds and candidates one format's search may spend; ``out()`` says why it stopped."""

    def __init__(self, max_seconds: float, max_candidates: int):
        self.t0, self.max_seconds, self.max_candidates = time.perf_counter(), float(max_seconds), int(max_candidates)

    def out(self, tried: int) -> str | None:
        spent = time.perf_counter() - self.t0
        if spent >= self.max_seconds:
            return f"time budget of {self.max_seconds:.0f} s ran out after {spent:.0f} s ({tried} candidates)"
        if tried >= self.max_candidates:
            return f"candidate budget of {self.max_candidates} ran out after {spent:.0f} s"
        return None


def float_fraction(size: int, all_quantized: int, all_float: int | None = None) -> float:
    """Fraction of the weight bytes a candidate of ``size`` keeps in float: where it stands between
    the fully quantized model (``all_quantized`` bytes) and the float32 one (``all_float``, the same
    converter's; 0 and 1). Without the float size, estimated as 4 x the quantized one (int8 weights
    are a quarter of float32: an estimate that counts the file's fixed overhead as weights)."""
    if all_quantized <= 0:
        return 0.0
    span = (all_float - all_quantized) if all_float and all_float > all_quantized else 3.0 * all_quantized
    return max(0.0, min(1.0, (size - all_quantized) / span))


def quantization_scheme(fmt: str) -> str:
    """``int8`` (int8 weights and activations), ``int16x8`` (int16 activations), from the registry row."""
    i = registry.info(fmt)
    return "int16x8" if i.activations == "int16" else i.weights


def verdict(model: str, fmt: str, result: dict[str, Any], limit: float) -> dict[str, Any] | None:
    """The "does not fit" verdict when the cheapest passing candidate keeps more than ``limit`` of the
    weights in float, or none passes; None when the format fits. The caller adds the measured
    ``alternatives`` (:mod:`fix_alternatives`)."""
    chosen = result.get("chosen")
    frac = chosen.get("float_fraction", 0.0) if chosen else None
    if chosen is not None and frac <= limit:
        return None
    cause = [r for r in result.get("ranking", [])[:5]]
    scheme = quantization_scheme(fmt)
    if chosen is None and result.get("stopped"):
        text = (f"no verdict on {scheme} for {model} ({fmt}): the search budget ran out before a candidate passed "
                f"({result['stopped']}); raise --max-seconds / --max-candidates")
        return {"text": text, "float_fraction": None, "limit": limit, "cause": cause, "alternatives": [],
                "undecided": True}
    text = (f"{scheme} does not fit {model} on this data ({fmt}): "
            + (f"the cheapest passing candidate keeps {frac:.0%} of the weights in float (> {limit:.0%} accepted; "
               f"--max-float-fraction {frac:.2f} accepts it)" if chosen else
               f"no candidate within the search budget passes ({result.get('stopped') or 'every one tried'})"))
    return {"text": text, "float_fraction": frac, "limit": limit, "cause": cause, "alternatives": []}


def render(v: dict[str, Any]) -> list[str]:
    """The verdict, its cause and the alternatives table as text lines."""
    from edgeport.benchmarks.verify import kinds
    from edgeport.tables import fmt_num, fmt_pct, fmt_size

    pct = kinds.percent_figures()
    lines = [v["text"], "cause: the layers that carry the quantization error, worst first:"]
    for r in v["cause"]:
        num = {k: x for k, x in r.items() if isinstance(x, float)}
        lines.append("  " + str(r.get("tensor") or r.get("layer")) + (f" ({r['op']})" if r.get("op") else "") + ": "
                     + ", ".join(f"{k} {x:.3g}" for k, x in num.items()))
    if v.get("undecided"):
        return lines
    lines.append("measured alternatives (exported from the same model and calibration, verified on the same data): "
                 "format | weights/activations | size | figures | verdict")
    for a in v["alternatives"]:
        if a.get("error"):
            lines.append(f"  {a['format']} | {a['status']}: {a['error']}")
            continue
        f = a["figures"]
        figs = ", ".join(f"{k.replace('_', ' ')} {fmt_pct(x) if k in pct else fmt_num(x, '.3g')}" for k, x in f.items())
        lines.append(f"  {a['format']} | {a['weights']}/{a['activations']} | {fmt_size(a['size_bytes'] or 0)} | "
                     f"{figs} | {a['status'].upper()}")
    if v.get("alternatives_error"):
        lines.append(f"  alternatives not measured: {v['alternatives_error']}")
    elif not v["alternatives"]:
        lines.append("  (none: the format registry has no format with quantized weights and float or int16 "
                     "activations)")
    return lines

