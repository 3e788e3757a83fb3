"""The search `edgeport fix` runs in a child process: quantized candidates, cheapest first, each
scored against the reference with the format's own gate, until one passes.

Candidates, in order of cost:

1. the calibration as exported, then with more samples (``export.calibration.MORE_SAMPLES``);
2. ONNX Runtime only: the other calibration methods (entropy, percentile, distribution);
3. selective quantization: the worst layers kept in float (TFLite: the QuantizationDebugger's
   RMSE-in-steps ranking and its public denylist; ONNX: ``quantize_static(nodes_to_exclude=...)``
   ranked by ONNX Runtime's QDQ debugging SQNR), growing 1, 2, 4, 8, ... layers until the gate
   passes, then each kept layer dropped again if the gate still passes without it.

Each candidate is written to a scratch file, loaded through ``edgeport.runtimes`` and run on the
verification inputs; its figures come from the same code as `edgeport verify`.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport.benchmarks.verify import kinds
from edgeport.benchmarks.verify.figures import compare
from edgeport.benchmarks.verify.gates import Gate
from edgeport.benchmarks.verify.jobs import load_inputs, predict_all
from edgeport.benchmarks.verify.result import summarize


@dataclass
class Candidate:
    label: str
    settings: dict[str, Any]  # calibration_samples, keep_float / onnx_keep_float, onnx_calibration
    kept_float: list[str] = field(default_factory=list)
    size_bytes: int = 0
    p50_us: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    float_fraction: float = 0.0  # estimated share of the weight bytes kept in float (fix_budget)

    @property
    def passes(self) -> bool:
        return self.error is None and not self.failures

    def to_dict(self) -> dict[str, Any]:
        keys = ("kind", "max_abs_diff", *kinds.fix_figures())  # and each kind's own figures
        return {"label": self.label, "settings": self.settings, "kept_float": self.kept_float,
                "size_bytes": self.size_bytes, "float_fraction": self.float_fraction, "p50_us": self.p50_us,
                "passes": self.passes,
                "figures": {k: self.figures.get(k) for k in keys if k in self.figures},
                "failures": self.failures, "error": self.error}


class Scorer:
    """Runs a candidate model on the inputs and gates it like `edgeport verify` would."""

    def __init__(self, job: dict[str, Any]):
        self.x = load_inputs(job["inputs"])
        with np.load(job["reference"], allow_pickle=False) as z:
            self.ref = {k: z[k] for k in z.files}
        self.y = np.load(job["labels"]) if job.get("labels") else None
        self.task, self.gate = job["task"], Gate(**job["gate"])
        self.kinds = kinds.resolve(self.ref, self.task, job.get("kinds"))  # verify's kinds (given or kept ones win)
        self.work = Path(tempfile.mkdtemp(prefix="edgeport-fix-"))

    def __call__(self, cand: Candidate, model: bytes, suffix: str) -> Candidate:
        from edgeport.benchmarks.bench.timing import time_series
        from edgeport.runtimes import load

        path = self.work / f"candidate{suffix}"
        path.write_bytes(model)
        cand.size_bytes = len(model)
        try:
            session = load(path, probe=False)
            out = predict_all(session, self.x)
            one = self.x[:1] if isinstance(self.x, np.ndarray) else {k: v[:1] for k, v in self.x.items()}
            session.predict(one)
            cand.p50_us = time_series(lambda: session.predict(one), seconds=0.3)["p50_us"]
        except Exception as exc:  # noqa: BLE001 - a candidate that does not run is recorded, not fatal
            cand.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return cand
        names = list(self.ref)
        arts = list(out)
        per: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(names):
            got = out[name] if name in out else out[arts[i]]
            f = compare(self.ref[name], got, kind=self.kinds[name], y=self.y if i == 0 else None,
                        settings=self.gate.settings())
            per[name] = f
            cand.failures += [f"{e.figure} = {e.value} ({e.gate})"
                              for e in self.gate.failures(f, artifact="", runtime="", output=name if len(names) > 1
                                                          else "", labelled=self.y is not None)]
        cand.figures = summarize(per)  # the worst figure over the outputs
        return cand


def _grow(score: Callable[[list[str], str], Candidate], ranking: list[str], limit: int,
          tried: list[Candidate], budget: Any = None, stop: dict[str, Any] | None = None) -> Candidate | None:
    """Keep the worst 1, 2, 4, ... layers (all but one at most) in float until a candidate passes; then
    drop every kept layer that the gate does not need."""
    cap, k, ks = min(limit, max(1, len(ranking) - 1)), 1, []  # every layer in float is no quantized model
    while k < cap:
        ks.append(k)
        k *= 2
    ks += [cap] if cap else []
    passing = None
    stop = {} if stop is None else stop
    for k in ks:
        if budget is not None and (why := budget.out(len(tried))):
            stop.update(stopped=why, not_tried=[f"the worst {j} layer(s) in float" for j in ks if j >= k])
            return None
        cand = score(ranking[:k], f"the worst {k} layer(s) in float")
        tried.append(cand)
        if cand.passes:
            passing = cand
            break
    if passing is None:
        return None
    kept = list(passing.kept_float)
    for name in reversed(list(kept)):
        if len(kept) == 1:
            break
        if budget is not None and (why := budget.out(len(tried))):
            stop.update(stopped=why,
                        not_tried=[f"pruning {_short(n)} (and {len(kept) - 1} more kept)" for n in kept[:1]])
            break
        trial = score([n for n in kept if n != name], f"{len(kept) - 1} layer(s) in float (without {_short(name)})")
        tried.append(trial)
        if trial.passes:
            kept.remove(name)
            passing = trial
    return passing


#: A passing candidate up to SIZE_SLACK larger than the smallest one is chosen instead when it runs
#: at least FASTER times faster at batch 1 (a few percent of flash is worth a real speed-up).
SIZE_SLACK, FASTER = 0.10, 1.5


def weigh_latency(tried: list[Candidate], chosen: Candidate | None) -> Candidate | None:
    """The cheapest passing candidate, size first, latency weighed: the search's pick, unless a
    passing one at most SIZE_SLACK larger is at least FASTER x faster (then the fastest of those)."""
    if chosen is None or chosen.p50_us is None:
        return chosen
    near = [c for c in tried if c.passes and c.p50_us is not None
            and c.size_bytes <= chosen.size_bytes * (1 + SIZE_SLACK) and c.p50_us * FASTER <= chosen.p50_us]
    if not near:
        return chosen
    faster = min(near, key=lambda c: c.p50_us)
    faster.label += f" (chosen for speed: {chosen.p50_us / faster.p50_us:.1f}x faster than {chosen.label!r})"
    return faster


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def search(job: dict[str, Any]) -> dict[str, Any]:
    """Child side of `edgeport fix` for one format; returns the candidates and the chosen one."""
    import shutil

    from edgeport.export.registry import info
    from edgeport.lazy import resolve

    from edgeport.benchmarks.verify.fix_budget import MAX_CANDIDATES, MAX_SECONDS, Budget

    t0 = time.perf_counter()
    budget = Budget(job.get("max_seconds") or MAX_SECONDS, job.get("max_candidates") or MAX_CANDIDATES)
    stop: dict[str, Any] = {}
    scorer = Scorer(job)
    builder = resolve(info(job["format"]).fixer)(job)  # the format's own fixer
    try:
        tried, chosen = _search(job, scorer, builder, budget, stop)
        chosen = weigh_latency(tried, chosen)
        if cause := getattr(builder, "cause", lambda _: None)(tried):  # a fixer that can name the cause
            stop["cause"] = cause
    finally:  # scratch models of every candidate
        shutil.rmtree(scorer.work, ignore_errors=True)
        if getattr(builder, "work", None):
            shutil.rmtree(builder.work, ignore_errors=True)
    index = next((i for i, c in enumerate(tried) if c is chosen), None)
    return {"candidates": [c.to_dict() for c in tried], "chosen": chosen.to_dict() if chosen else None,
            "chosen_index": index, "ranking": getattr(builder, "ranked", [])[:32],
            "ranking_size": len(getattr(builder, "ranked", [])), "seconds": time.perf_counter() - t0,
            "max_seconds": budget.max_seconds, "max_candidates": budget.max_candidates, **stop}


def _built(scorer: Scorer, builder, cand: Candidate) -> Candidate:
    """Build and score one candidate; one the converter cannot build is recorded as such, not fatal
    (TFLite's debugger refuses a model with every op kept in float, for one)."""
    try:
        model, suffix = builder.build(cand.settings)
    except Exception as exc:  # noqa: BLE001 - any converter error: the candidate fails, the search goes on
        cand.error = f"not built: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return cand
    return scorer(cand, model, suffix)


def _search(job: dict[str, Any], scorer: Scorer, builder, budget: Any,
            stop: dict[str, Any]) -> tuple[list[Candidate], Candidate | None]:
    from edgeport.benchmarks.verify.fix_budget import float_fraction

    tried: list[Candidate] = []
    for label, settings in builder.calibrations():
        if tried and (why := budget.out(len(tried))):
            stop.update(stopped=why, not_tried=[label, "selective quantization (layers kept in float)"])
            return tried, None
        cand = _built(scorer, builder, Candidate(label, settings))
        tried.append(cand)
        if cand.passes:
            return tried, cand
    base = tried[-1].settings if builder.base_from_last else min(tried, key=lambda c: kinds.rank(c.figures)).settings
    if why := budget.out(len(tried)):
        stop.update(stopped=why, not_tried=["selective quantization (layers kept in float)"])
        return tried, None
    ranking = builder.ranking(base)
    quantized = tried[0].size_bytes
    float_size = builder.float_size() if hasattr(builder, "float_size") else None  # the same converter's float32

    def score(kept: list[str], label: str) -> Candidate:
        settings = {**base, builder.keep_key: builder.expand(kept)}
        cand = _built(scorer, builder, Candidate(label, settings, kept_float=kept))
        cand.float_fraction = float_fraction(cand.size_bytes, quantized, float_size)
        return cand

    return tried, _grow(score, ranking, int(job.get("max_float", 64)), tried, budget, stop)
