"""Single-label classifiers: one decision per input row, as ``probabilities`` (softmax rows),
``binary`` (one sigmoid) or ``scores`` (logits); ``classifier`` is what a user calls any of them
(``--output-kind NAME=classifier``: the values pick which).

Figures: top-1 ``agreement`` and ``disagreements``; agreement on *confident* inputs (the
reference's top-1 margin above ``confidence_margin``); the mean KL divergence of the artifact's
distribution from the reference's; top-5 overlap (six classes or more); with labels, ``accuracy``,
the reference's and the change in points. The gate fields bound agreement, confident agreement,
KL divergence and the accuracy drop (labelled data only).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import Bound, Check, GateField, Kind, Need, in01
from edgeport.export.registry import Precision

_F32, _F16, _Q = Precision.FLOAT32, Precision.FP16, Precision.QUANTIZED
DEFAULT_MARGIN = 0.2
KL_EPS = 1e-7
MIN_AGREEMENT = GateField("min_agreement", "fraction of inputs whose top-1 class equals the reference's",
                          {_F32: 0.999, _F16: 0.99, _Q: 0.95})
MIN_CONFIDENT = GateField("min_confident_agreement",
                          "the same over inputs whose reference top-1 margin > confidence_margin",
                          {_F16: 0.999, _Q: 0.99})
MARGIN = GateField("confidence_margin", "top-1 minus top-2 probability that makes an input \"confident\"",
                   setting=DEFAULT_MARGIN)
MAX_DROP = GateField("max_accuracy_drop_points", "accuracy may fall at most this many points below the reference's",
                     {_F16: 0.5, _Q: 1.0}, fraction=False)
MAX_KL = GateField("max_kl_divergence", "mean KL(reference || artifact) of the class distributions",
                   {_F16: 0.01, _Q: 0.05}, fraction=False)
#: The figures of a distribution over classes (``per_position`` has them at every position).
DISTRIBUTION_FIGURES = ("agreement", "disagreements", "confidence_margin", "confident_n", "confident_agreement",
                        "kl_divergence", "top5_overlap")


def is_distribution(ref: np.ndarray) -> bool:
    """Rows over the last axis (two or more) non-negative and summing to 1."""
    last = ref.reshape(-1, ref.shape[-1])
    return bool(ref.shape[-1] >= 2 and last.min() >= -1e-6 and np.allclose(last.sum(axis=1), 1.0, atol=1e-3))


def margins(dist: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per input."""
    if dist.shape[1] < 2:
        return np.ones(len(dist))
    part = np.sort(dist, axis=1)[:, -2:]
    return part[:, 1] - part[:, 0]


class Classifier(Kind):
    """probabilities: the rows are the distribution (the base of binary and scores)."""

    summary = "one single-label classifier per input row"
    gate_fields = (MIN_AGREEMENT, MIN_CONFIDENT, MARGIN, MAX_DROP, MAX_KL)
    worst_is_max = ("kl_divergence", "disagreements")
    worst_is_min = ("agreement", "confident_agreement", "accuracy", "accuracy_delta_points", "top5_overlap")
    fix_figures = ("accuracy", "accuracy_delta_points", "agreement", "confident_agreement", "kl_divergence")
    rank_by = "kl_divergence"
    alternative_figures = ("agreement", "confident_agreement", "kl_divergence")
    percent_figures = ("agreement", "confident_agreement")

    def __init__(self, name: str, summary: str, *rules):
        self.name, self.summary, self.rules = name, summary, tuple(rules)

    def distribution(self, out: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities of an output of this kind."""
        return out.reshape(len(out), -1).astype(np.float64)

    def top1(self, out: np.ndarray) -> np.ndarray:
        return out.reshape(len(out), -1).argmax(axis=1)

    def reference_accuracy(self, ref: np.ndarray, y: np.ndarray) -> float | None:
        labels = y.reshape(-1).astype(np.int64)
        pred = self.top1(ref)
        return float((pred == labels).mean()) if len(pred) == len(labels) else None

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        margin = settings.get(MARGIN.name, DEFAULT_MARGIN) if margin is None else margin
        pred, ref_pred = self.top1(out), self.top1(ref)
        same = pred == ref_pred
        f["agreement"] = float(same.mean()) if len(same) else None
        f["disagreements"] = int((~same).sum())
        p_ref = self.distribution(ref)
        confident = margins(p_ref) > margin
        f["confidence_margin"] = margin
        f["confident_n"] = int(confident.sum())
        f["confident_agreement"] = float(same[confident].mean()) if confident.any() else None
        if f["finite"]:
            p_out = np.clip(self.distribution(out), KL_EPS, 1.0)
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

    def checks(self, gate: Any, need: Need, *, labelled: bool) -> Iterator[Check]:
        yield from Bound("agreement", MIN_AGREEMENT.name, ">=", lambda g, b: f">= {b:.2%}").check(gate, need)
        yield from Bound("confident_agreement", MIN_CONFIDENT.name, ">=",
                         lambda g, b: f">= {b:.2%} (margin > {g.confidence_margin:g})").check(gate, need)
        yield from Bound("kl_divergence", MAX_KL.name, "<=").check(gate, need)
        drop = gate.max_accuracy_drop_points
        if drop is not None and labelled:
            yield need("accuracy_delta_points", f">= -{drop:g} points", lambda v: v >= -drop)


class Binary(Classifier):
    """One sigmoid: the decision is the value above 0.5."""

    def distribution(self, out: np.ndarray) -> np.ndarray:
        p = np.clip(out.reshape(len(out), -1).astype(np.float64)[:, :1], 0.0, 1.0)
        return np.concatenate([1.0 - p, p], axis=1)

    def top1(self, out: np.ndarray) -> np.ndarray:
        return (out.reshape(len(out), -1)[:, 0] > 0.5).astype(np.int64)


class Scores(Classifier):
    """Logits: the distribution is their softmax."""

    def distribution(self, out: np.ndarray) -> np.ndarray:
        rows = out.reshape(len(out), -1).astype(np.float64)
        e = np.exp(rows - rows.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _binary(ref: np.ndarray, task: str) -> bool:
    """Step 2: one column (or one value per row) in [0, 1] of a classification model."""
    if ref.ndim < 2 or not len(ref):
        rows = ref.reshape(len(ref), -1) if len(ref) else ref.reshape(0, 1)
        return rows.shape[1] == 1 and in01(rows) and task == "classification"
    return ref.ndim == 2 and ref.shape[1] == 1 and in01(ref) and task == "classification"


PROBABILITIES = Classifier("probabilities", "softmax rows: one distribution per input row",
                           (30, lambda ref, task: ref.ndim == 2 and is_distribution(ref)))
BINARY = Binary("binary", "one sigmoid per input row", (20, _binary))
SCORES = Scores("scores", "logits of one classifier per input row",
                (80, lambda ref, task: ref.ndim == 2 and task == "classification"))


class Alias(Classifier):
    """``classifier``: what a user calls any of the three; the values say which (never detected)."""

    def pick(self, ref: np.ndarray) -> str:
        rows = ref.reshape(len(ref), -1)
        if rows.shape[1] == 1:
            return BINARY.name
        ok = np.isfinite(rows).all() and rows.min() >= -1e-6 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3)
        return PROBABILITIES.name if ok else SCORES.name


CLASSIFIER = Alias("classifier", "a single-label classifier: probabilities, binary or scores, from the values")
