"""Parity gates: what each precision must achieve against the Keras outputs, set in one place.

A format belongs to one precision class; each class has one :class:`Gate`. Overrides come from a
JSON file (``{"fp16": {"max_abs_diff": 2e-3}, "tflite_int8": {"min_agreement": 0.99}}``) or from
``KEY.FIELD=VALUE`` pairs (``fp16.max_abs_diff=2e-3,quantized.min_agreement=0.97``), where KEY is a
precision class or, more specific and winning over it, a format name.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from edgeport.errors import EdgeportError, GateError, UnknownNameError


class Precision(str, Enum):
    FLOAT32 = "float32"
    FP16 = "fp16"
    QUANTIZED = "quantized"


#: Every export format's precision class. ``c_array`` holds the int8 flatbuffer's bytes: it is
#: verified by comparing those bytes with the ``tflite_int8`` artifact, then gated like it.
PRECISION_OF_FORMAT: dict[str, Precision] = {
    "saved_model": Precision.FLOAT32, "tflite_fp32": Precision.FLOAT32, "onnx": Precision.FLOAT32,
    "tflite_fp16": Precision.FP16,
    "tflite_dynamic": Precision.QUANTIZED, "tflite_int8": Precision.QUANTIZED,
    "tflite_int16x8": Precision.QUANTIZED, "onnx_int8": Precision.QUANTIZED,
    "c_array": Precision.QUANTIZED,
}


@dataclass(frozen=True)
class Gate:
    """Thresholds one artifact x runtime must meet; ``None`` means "not gated on this figure".

    max_abs_diff: largest |artifact - keras| over every output value (regression: divided by
        max(1, largest |keras|), the ``max_scaled_diff`` figure).
    min_agreement: fraction of inputs whose top-1 class equals Keras's (classification only).
    max_accuracy_drop_points: accuracy may fall at most this many percentage points below Keras.
    max_relative_error: regression only: mean |artifact - keras| / mean |keras|.
    """

    max_abs_diff: float | None = None
    min_agreement: float | None = None
    max_accuracy_drop_points: float | None = None
    max_relative_error: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_abs_diff", "max_accuracy_drop_points", "max_relative_error"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # also rejects NaN
                raise ValueError(f"Gate.{name} must be >= 0, got {value}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"Gate.min_agreement is a fraction in [0, 1], got {self.min_agreement}")
        if all(getattr(self, f.name) is None for f in dataclasses.fields(self)):
            raise ValueError("a Gate must set at least one threshold")

    def failures(self, figures: Mapping[str, Any], *, artifact: str, runtime: str) -> list[GateError]:
        """One GateError per figure outside its threshold (a missing figure is not gated)."""
        errors = []
        for figure, limit, ok in self._checks(figures):
            if not ok:
                value = figures[figure]
                errors.append(GateFailure(artifact, runtime, figure, value, limit))
        return errors

    def _checks(self, f: Mapping[str, Any]):
        def has(key: str) -> bool:
            return f.get(key) is not None

        # regression outputs are not probabilities: their max diff is gated relative to max(1, |keras|)
        diff_key = "max_scaled_diff" if has("max_scaled_diff") else "max_abs_diff"
        if self.max_abs_diff is not None and has(diff_key):
            yield diff_key, f"<= {self.max_abs_diff:g}", f[diff_key] <= self.max_abs_diff
        if self.min_agreement is not None and has("agreement"):
            yield "agreement", f">= {self.min_agreement:.2%}", f["agreement"] >= self.min_agreement
        if self.max_accuracy_drop_points is not None and has("accuracy_delta_points"):
            yield ("accuracy_delta_points", f">= -{self.max_accuracy_drop_points:g} points",
                   f["accuracy_delta_points"] >= -self.max_accuracy_drop_points)
        if self.max_relative_error is not None and has("relative_error"):
            yield ("relative_error", f"<= {self.max_relative_error:g}",
                   f["relative_error"] <= self.max_relative_error)

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


class GateFailure(GateError):
    """One figure outside its gate: ``artifact``, ``runtime``, ``figure``, ``value``, ``gate``."""

    def __init__(self, artifact: str, runtime: str, figure: str, value: Any, gate: str):
        self.artifact, self.runtime, self.figure, self.value, self.gate = artifact, runtime, figure, value, gate
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        super().__init__(f"{artifact} on {runtime}: {figure} = {shown} fails the gate {figure} {gate}")

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "runtime": self.runtime, "figure": self.figure,
                "value": self.value, "gate": self.gate, "message": str(self)}


DEFAULT_GATES: dict[Precision, Gate] = {
    Precision.FLOAT32: Gate(max_abs_diff=1e-5, min_agreement=1.0, max_relative_error=1e-5),
    Precision.FP16: Gate(max_abs_diff=1e-3, min_agreement=0.999, max_relative_error=1e-3),
    Precision.QUANTIZED: Gate(min_agreement=0.98, max_accuracy_drop_points=1.0, max_relative_error=0.02),
}


@dataclass(frozen=True)
class GateTable:
    """The gates in force: per precision class, plus per-format overrides."""

    by_precision: Mapping[Precision, Gate]
    by_format: Mapping[str, Gate] = dataclasses.field(default_factory=dict)

    def for_format(self, fmt: str) -> Gate:
        if fmt in self.by_format:
            return self.by_format[fmt]
        if fmt not in PRECISION_OF_FORMAT:
            raise UnknownNameError("format", fmt, list(PRECISION_OF_FORMAT))
        return self.by_precision[PRECISION_OF_FORMAT[fmt]]

    def to_dict(self) -> dict[str, Any]:
        return {**{p.value: g.to_dict() for p, g in self.by_precision.items()},
                **{f: g.to_dict() for f, g in self.by_format.items()}}


def _parse_pairs(text: str) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        target, dot, field = key.strip().partition(".")
        if not (eq and dot):
            raise EdgeportError(f"gate override {item!r}: expected KEY.FIELD=VALUE, e.g. fp16.max_abs_diff=2e-3")
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
    else:
        overrides = _parse_pairs(str(spec))
    by_precision, by_format = dict(DEFAULT_GATES), {}
    names = [p.value for p in Precision] + list(PRECISION_OF_FORMAT)
    fields = {f.name for f in dataclasses.fields(Gate)}
    # precision classes first, so a format override builds on an overridden class
    for key, changes in sorted(overrides.items(), key=lambda kv: kv[0] not in Precision._value2member_map_):
        if key not in names:
            raise UnknownNameError("gate class or format", key, names)
        if unknown := set(changes) - fields:
            raise UnknownNameError("gate field", sorted(unknown)[0], sorted(fields))
        base = by_precision[Precision(key)] if key in Precision._value2member_map_ \
            else by_precision[PRECISION_OF_FORMAT[key]]
        try:
            gate = dataclasses.replace(base, **changes)
        except ValueError as exc:
            raise EdgeportError(f"gate override for {key}: {exc}") from None
        if key in Precision._value2member_map_:
            by_precision[Precision(key)] = gate
        else:
            by_format[key] = gate
    return GateTable(by_precision, by_format)
