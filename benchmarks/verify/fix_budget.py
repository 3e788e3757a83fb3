"""Bounds and verdict of `edgeport fix`: a time and candidate budget for the search, the float
fraction of a candidate, and the "int8 does not fit" verdict with the cause and the alternatives."""
from __future__ import annotations

import json
import time
from pathlib import Path
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


def float_fraction(size: int, all_quantized: int) -> float:
    """Estimated fraction of the weight bytes kept in float: int8 weights are a quarter of float32,
    so a fully quantized model of ``all_quantized`` bytes holds about ``4 * all_quantized`` float32
    weight bytes, and each float byte above it is three more (estimated from sizes)."""
    if all_quantized <= 0:
        return 0.0
    return max(0.0, min(1.0, (size - all_quantized) / (3.0 * all_quantized)))


def alternatives(model_dir: Path, fmt: str) -> list[dict[str, Any]]:
    """The measured formats that keep activations out of int8 (int8 or int4 weights with float or
    int16 activations, fp16 weights), from the last `edgeport verify` of this model: size, figures,
    verdict."""
    try:
        last = json.loads((model_dir / "verify.json").read_text())
    except (OSError, ValueError):
        return []
    rows = []
    for r in last.get("results", []):
        name = r.get("format", "")
        if name == fmt or not registry.known(name):
            continue
        i = registry.info(name)
        if i.weights == "float32" or i.activations == "int8" or i.proof is not registry.Proof.RUN:
            continue
        f = r.get("figures") or {}
        rows.append({"format": name, "weights": i.weights, "activations": i.activations,
                     "size_bytes": r.get("size_bytes"), "status": r.get("status"),
                     "figures": {k: f[k] for k in ("agreement", "confident_agreement", "kl_divergence", "f1",
                                                   "flip_rate", "cosine_min", "relative_error") if k in f}})
    return rows


def verdict(model: str, fmt: str, result: dict[str, Any], limit: float, model_dir: Path) -> dict[str, Any] | None:
    """The "does not fit" verdict when the cheapest passing candidate (or, with none, the search's
    last one) keeps more than ``limit`` of the weights in float; None when int8 fits."""
    chosen = result.get("chosen")
    frac = chosen.get("float_fraction", 0.0) if chosen else None
    if chosen is not None and frac <= limit:
        return None
    cause = [r for r in result.get("ranking", [])[:5]]
    if chosen is None and result.get("stopped"):
        text = (f"no verdict on int8 for {model} ({fmt}): the search budget ran out before a candidate passed "
                f"({result['stopped']}); raise --max-seconds / --max-candidates")
        return {"text": text, "float_fraction": None, "limit": limit, "cause": cause,
                "alternatives": alternatives(model_dir, fmt), "undecided": True}
    text = (f"int8 does not fit {model} on this data ({fmt}): "
            + (f"the cheapest passing candidate keeps {frac:.0%} of the weights in float (> {limit:.0%} accepted; "
               f"--max-float-fraction {frac:.2f} accepts it)" if chosen else
               f"no candidate within the search budget passes ({result.get('stopped') or 'every one tried'})"))
    return {"text": text, "float_fraction": frac, "limit": limit, "cause": cause,
            "alternatives": alternatives(model_dir, fmt)}


def render(v: dict[str, Any]) -> list[str]:
    """The verdict, its cause and the alternatives table as text lines."""
    from edgeport.tables import fmt_num, fmt_pct, fmt_size

    lines = [v["text"], "cause: the layers that carry the int8 error, worst first:"]
    for r in v["cause"]:
        num = {k: x for k, x in r.items() if isinstance(x, float)}
        lines.append("  " + str(r.get("tensor") or r.get("layer")) + (f" ({r['op']})" if r.get("op") else "") + ": "
                     + ", ".join(f"{k} {x:.3g}" for k, x in num.items()))
    lines.append("measured alternatives (last verify): format | weights/activations | size | agree | KL | verdict")
    for a in v["alternatives"]:
        f = a["figures"]
        lines.append(f"  {a['format']} | {a['weights']}/{a['activations']} | {fmt_size(a['size_bytes'] or 0)} | "
                     f"{fmt_pct(f.get('agreement'))} | {fmt_num(f.get('kl_divergence'), '.3g')} | {a['status']}")
    if not v["alternatives"]:
        lines.append("  (none measured: export and verify the dynamic-range, fp16, int16x8 and int4-weight formats)")
    return lines
