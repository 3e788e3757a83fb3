"""Parity gates: what each precision class must achieve against its reference, set in one place.

A format's precision class comes from the export registry (``edgeport.export.registry``); each
class has one :class:`Gate`. The gates mean the same on a one-layer MLP and a 150-layer CNN:

- **float32**: every output within ``tolerance_factor`` x the reference's own float32 noise (the
  largest |Keras float32 - Keras float64| on the noise inputs), never below 4 float32 ulps of the
  output's scale; top-1 agreement 99.9% (a flip can only be a near tie when the bound holds).
- **fp16**: the same tight bound against the fp16 reference (the float32 graph with its weights
  rounded to float16: the format's own arithmetic); agreement, confident agreement, accuracy and
  KL divergence against the float model.
- **quantized**: accuracy change, agreement, agreement on confident inputs (reference top-1
  margin above ``confidence_margin``) and the mean KL divergence, all against the float model.

Which task figures a gate holds depends on the output's kind (``kinds.py``): classifiers the
agreement / confident agreement / KL / accuracy fields, ``per_position`` the agreement / confident
agreement / KL fields over every position, ``multilabel`` ``max_flip_rate`` and ``min_f1``,
``embedding`` ``min_cosine`` and ``min_neighbour_agreement``, ``detections``
``min_detection_recall``, ``min_detection_precision`` and ``min_mean_iou``, ``values``
``max_relative_error``. The tight bound (float32, fp16) holds for every kind.

Every gate also needs finite outputs. A figure a gate needs that was not measured is a failure,
never a skip; the one exception is accuracy on data without labels, which the table states.

Overrides: a JSON file (``{"fp16": {"tolerance_factor": 20}, "<format name>": {"min_agreement": 0.99}}``)
or ``KEY.FIELD=VALUE`` pairs (``quantized.max_kl_divergence=0.1``), KEY a precision class or,
more specific and winning over it, a format name.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds import CLASSIFIER_KINDS, DETECTIONS, EMBEDDING, MULTILABEL, PER_POSITION
from edgeport.errors import EdgeportError, GateError, UnknownNameError
from edgeport.export.registry import INFO, Precision, precision_of

FLOAT32_ULP = float(np.finfo(np.float32).eps)
FLOOR_ULPS = 4
_FRACTIONS = ("min_agreement", "min_confident_agreement", "confidence_margin", "max_flip_rate", "min_f1",
              "min_cosine", "min_neighbour_agreement", "min_detection_recall", "min_detection_precision",
              "min_mean_iou", "decision_threshold", "score_threshold", "nms_iou", "match_iou")
#: Fields that say how a figure is measured, not what it must reach.
SETTINGS = ("confidence_margin", "decision_threshold", "score_threshold", "nms_iou", "match_iou")


@dataclass(frozen=True)
class Gate:
    """Thresholds one artifact x runtime must meet, per output; ``None`` means "not gated".

    tolerance_factor: ``tolerance_diff`` (max |artifact - tight reference|: Keras float32, or the
        fp16-weights reference for fp16) <= factor x the reference's float32 noise.
    max_abs_diff: a fixed bound on ``tolerance_diff`` instead of the derived one.
    min_agreement: fraction of inputs whose top-1 class equals the reference's.
    min_confident_agreement: the same over inputs whose reference top-1 margin > confidence_margin.
    confidence_margin: top-1 minus top-2 probability that makes an input "confident".
    max_accuracy_drop_points: accuracy may fall at most this many points below the reference's.
    max_kl_divergence: mean KL(reference || artifact) of the class distributions.
    max_relative_error: value outputs: mean |artifact - reference| / mean |reference|.
    max_flip_rate: multilabel: fraction of elements whose decision at decision_threshold flips.
    min_f1: multilabel: F1 of the artifact's positive elements against the reference's.
    min_cosine: embedding: the smallest cosine similarity of a row with the reference's row.
    min_neighbour_agreement: embedding: rows whose nearest other row is the reference's.
    min_detection_recall / min_detection_precision: detections matched to the reference's
        (same class, IoU >= match_iou) over the reference's / the artifact's detections.
    min_mean_iou: detections: mean IoU of the matched detections.
    decision_threshold, score_threshold, nms_iou, match_iou: how those figures are measured.
    """

    tolerance_factor: float | None = None
    max_abs_diff: float | None = None
    min_agreement: float | None = None
    min_confident_agreement: float | None = None
    confidence_margin: float = 0.2
    max_accuracy_drop_points: float | None = None
    max_kl_divergence: float | None = None
    max_relative_error: float | None = None
    max_flip_rate: float | None = None
    min_f1: float | None = None
    min_cosine: float | None = None
    min_neighbour_agreement: float | None = None
    min_detection_recall: float | None = None
    min_detection_precision: float | None = None
    min_mean_iou: float | None = None
    decision_threshold: float = 0.5
    score_threshold: float = 0.25
    nms_iou: float = 0.45
    match_iou: float = 0.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Gate.{f.name} must be a number >= 0, got {value!r}")
            if f.name in _FRACTIONS and value > 1:
                raise ValueError(f"Gate.{f.name} is a fraction in [0, 1], got {value}")
        if self.tolerance_factor is not None and self.tolerance_factor < 1:
            raise ValueError(f"Gate.tolerance_factor must be >= 1, got {self.tolerance_factor}")
        if all(getattr(self, f.name) is None for f in dataclasses.fields(self) if f.name not in SETTINGS):
            raise ValueError("a Gate must set at least one threshold")

    @property
    def tight(self) -> bool:
        """Whether this gate bounds the difference itself (float32, fp16)."""
        return self.tolerance_factor is not None or self.max_abs_diff is not None

    def settings(self) -> dict[str, float]:
        """How the figures are measured: pass to ``figures.compare(..., settings=)``."""
        return {f: getattr(self, f) for f in SETTINGS}

    def tolerance(self, noise: float | None, scale: float) -> tuple[float | None, str]:
        """(bound on max |diff|, how it was derived) for an output whose reference has float32
        ``noise`` (None: unknown) and largest magnitude ``scale``."""
        if self.max_abs_diff is not None:
            return self.max_abs_diff, f"fixed gate {self.max_abs_diff:g}"
        if self.tolerance_factor is None:
            return None, "not gated"
        floor = FLOOR_ULPS * FLOAT32_ULP * max(1.0, scale)
        if noise is None:
            return None, "no float32 noise figure for this reference"
        bound = max(self.tolerance_factor * noise, floor)
        basis = (f"{self.tolerance_factor:g} x float32 noise {noise:.3g}" if bound > floor
                 else f"floor of {FLOOR_ULPS} float32 ulps")
        return bound, basis

    def checks(self, f: Mapping[str, Any], *, labelled: bool) -> Iterator[tuple[str, str, Any, bool]]:
        """(figure, gate text, value, ok) for every figure this gate needs of one output's figures
        ``f``; a needed figure that is missing yields ok=False with value None."""
        def need(figure: str, text: str, ok) -> tuple[str, str, Any, bool]:
            value = f.get(figure)
            return figure, text, value, value is not None and bool(ok(value))

        yield need("finite", "== True", lambda v: v is True)
        if self.tight:
            bound = f.get("tolerance")
            yield need("tolerance_diff", f"<= {bound:.3g} ({f.get('tolerance_basis')})" if bound is not None
                       else f"<= tolerance ({f.get('tolerance_basis', 'not derived')})",
                       lambda v: bound is not None and v <= bound)
        kind = f.get("kind")
        if kind in CLASSIFIER_KINDS or kind == PER_POSITION:
            yield from self._class_checks(need, labelled=labelled and kind != PER_POSITION)
        elif kind == MULTILABEL:
            yield from self._minmax(need, ("flip_rate", "max_flip_rate", "<="), ("f1", "min_f1", ">="))
        elif kind == EMBEDDING:
            yield from self._minmax(need, ("cosine_min", "min_cosine", ">="),
                                    ("neighbour_agreement", "min_neighbour_agreement", ">="))
        elif kind == DETECTIONS:
            yield from self._minmax(need, ("detection_recall", "min_detection_recall", ">="),
                                    ("detection_precision", "min_detection_precision", ">="),
                                    ("mean_iou", "min_mean_iou", ">="))
        else:  # values, and anything else
            if self.max_relative_error is not None:
                yield need("relative_error", f"<= {self.max_relative_error:g}",
                           lambda v: v <= self.max_relative_error)

    def _class_checks(self, need, *, labelled: bool) -> Iterator[tuple[str, str, Any, bool]]:
        if self.min_agreement is not None:
            yield need("agreement", f">= {self.min_agreement:.2%}", lambda v: v >= self.min_agreement)
        if self.min_confident_agreement is not None:
            yield need("confident_agreement", f">= {self.min_confident_agreement:.2%} (margin > "
                       f"{self.confidence_margin:g})", lambda v: v >= self.min_confident_agreement)
        if self.max_kl_divergence is not None:
            yield need("kl_divergence", f"<= {self.max_kl_divergence:g}", lambda v: v <= self.max_kl_divergence)
        if self.max_accuracy_drop_points is not None and labelled:
            yield need("accuracy_delta_points", f">= -{self.max_accuracy_drop_points:g} points",
                       lambda v: v >= -self.max_accuracy_drop_points)

    def _minmax(self, need, *rules: tuple[str, str, str]) -> Iterator[tuple[str, str, Any, bool]]:
        """(figure, gate field, ">=" or "<=") rules for the fields this gate sets."""
        for figure, field, op in rules:
            bound = getattr(self, field)
            if bound is None:
                continue
            text = f"{op} {bound:g}"
            if field == "max_flip_rate":
                text = f"<= {bound:.3%} (decision at {self.decision_threshold:g})"
            elif field.startswith("min_detection") or field == "min_mean_iou":
                text += f" (score >= {self.score_threshold:g}, same class, IoU >= {self.match_iou:g})"
            yield need(figure, text, (lambda v, b=bound: v >= b) if op == ">=" else (lambda v, b=bound: v <= b))

    def failures(self, figures: Mapping[str, Any], *, artifact: str, runtime: str, output: str = "",
                 labelled: bool = True) -> list["GateFailure"]:
        """One GateFailure per figure outside its threshold or missing."""
        return [GateFailure(artifact, runtime, figure, value, text, output=output)
                for figure, text, value, ok in self.checks(figures, labelled=labelled) if not ok]

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


class GateFailure(GateError):
    """One figure outside its gate, or missing: ``artifact``, ``runtime``, ``figure``, ``value``, ``gate``."""

    def __init__(self, artifact: str, runtime: str, figure: str, value: Any, gate: str, *, output: str = ""):
        self.artifact, self.runtime, self.figure, self.value, self.gate = artifact, runtime, figure, value, gate
        self.output = output
        where = f"{artifact} on {runtime}" + (f", output {output}" if output else "")
        if value is None:
            text = f"{where}: {figure} could not be measured; the gate {figure} {gate} needs it"
        else:
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            text = f"{where}: {figure} = {shown} fails the gate {figure} {gate}"
        super().__init__(text)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "GateFailure", "artifact": self.artifact, "runtime": self.runtime, "output": self.output,
                "figure": self.figure, "value": self.value, "gate": self.gate, "message": str(self)}


DEFAULT_GATES: dict[Precision, Gate] = {
    Precision.FLOAT32: Gate(tolerance_factor=10.0, min_agreement=0.999),
    Precision.FP16: Gate(tolerance_factor=10.0, min_agreement=0.99, min_confident_agreement=0.999,
                         max_accuracy_drop_points=0.5, max_kl_divergence=0.01, max_relative_error=1e-3,
                         max_flip_rate=0.001, min_f1=0.85, min_cosine=0.999, min_neighbour_agreement=0.95,
                         min_detection_recall=0.95, min_detection_precision=0.95, min_mean_iou=0.9),
    Precision.QUANTIZED: Gate(min_agreement=0.95, min_confident_agreement=0.99, max_accuracy_drop_points=1.0,
                              max_kl_divergence=0.05, max_relative_error=0.02, max_flip_rate=0.005, min_f1=0.8,
                              min_cosine=0.95, min_neighbour_agreement=0.9, min_detection_recall=0.9,
                              min_detection_precision=0.9, min_mean_iou=0.8),
}


@dataclass(frozen=True)
class GateTable:
    """The gates in force: per precision class, plus per-format overrides."""

    by_precision: Mapping[Precision, Gate]
    by_format: Mapping[str, Gate] = dataclasses.field(default_factory=dict)

    def for_format(self, fmt: str) -> Gate:
        if fmt in self.by_format:
            return self.by_format[fmt]
        return self.by_precision[precision_of(fmt)]

    def to_dict(self) -> dict[str, Any]:
        return {**{p.value: g.to_dict() for p, g in self.by_precision.items()},
                **{f: g.to_dict() for f, g in self.by_format.items()}}


def _parse_pairs(text: str) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        target, dot, field = key.strip().partition(".")
        if not (eq and dot):
            raise EdgeportError(f"gate override {item!r}: expected KEY.FIELD=VALUE, e.g. quantized.min_agreement=0.97")
        try:
            number = None if value.strip().lower() in ("none", "null", "") else float(value)
        except ValueError:
            raise EdgeportError(f"gate override {item!r}: {value!r} is not a number") from None
        out.setdefault(target, {})[field.strip()] = number
    return out


def load_gates(spec: str | Path | Mapping[str, Mapping[str, Any]] | None = None) -> GateTable:
    """DEFAULT_GATES with ``spec`` applied: a JSON file path, ``KEY.FIELD=VALUE,...`` or a mapping."""
    if spec is None or spec == "":
        overrides: Mapping[str, Mapping[str, Any]] = {}
    elif isinstance(spec, Mapping):
        overrides = spec
    elif str(spec).endswith(".json") or Path(spec).is_file():
        try:
            overrides = json.loads(Path(spec).read_text())
        except (OSError, ValueError) as exc:
            raise EdgeportError(f"{spec}: unreadable gates file ({exc})") from None
        if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
            raise EdgeportError(f"{spec}: a gates file maps a class or format to {{field: value}}")
    else:
        overrides = _parse_pairs(str(spec))
    by_precision, by_format = dict(DEFAULT_GATES), {}
    classes = {p.value: p for p in Precision}
    fields = {f.name for f in dataclasses.fields(Gate)}
    # precision classes first, so a format override builds on an overridden class
    for key, changes in sorted(overrides.items(), key=lambda kv: kv[0] not in classes):
        if key not in classes and key not in INFO:
            raise UnknownNameError("gate class or format", key, [*classes, *INFO])
        if unknown := set(changes) - fields:
            raise UnknownNameError("gate field", sorted(unknown)[0], sorted(fields))
        base = by_precision[classes[key]] if key in classes else by_precision[precision_of(key)]
        try:
            gate = dataclasses.replace(base, **changes)
        except (ValueError, TypeError) as exc:
            raise EdgeportError(f"gate override for {key}: {exc}") from None
        if key in classes:
            by_precision[classes[key]] = gate
        else:
            by_format[key] = gate
    return GateTable(by_precision, by_format)
