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

The rest of a gate's fields come from the output kinds (``kinds/``: each kind module declares its
fields with their default per precision class, and which of its figures each bounds); a gate
checks the fields of the output's own kind. The tight bound (float32, fp16) holds for every kind.

Every gate also needs finite outputs. A figure a gate needs that was not measured is a failure,
never a skip; the one exception is accuracy on data without labels, which the table states.

Overrides: a JSON file (``{"fp16": {"tolerance_factor": 20}, "<format name>": {"min_agreement": 0.99}}``)
or ``KEY.FIELD=VALUE`` pairs (``quantized.max_kl_divergence=0.1``), KEY a precision class or,
more specific and winning over it, a format name.
"""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import numpy as np

from edgeport.benchmarks.verify import kinds
from edgeport.benchmarks.verify.kinds.base import Check, GateField
from edgeport.errors import EdgeportError, GateError, UnknownNameError
from edgeport.export.registry import INFO, Precision, precision_of

FLOAT32_ULP = float(np.finfo(np.float32).eps)
FLOOR_ULPS = 4
_TIGHT = (GateField("tolerance_factor", "``tolerance_diff`` (max |artifact - tight reference|: Keras float32, or "
                    "the fp16-weights reference for fp16) <= factor x the reference's float32 noise",
                    {Precision.FLOAT32: 10.0, Precision.FP16: 10.0}, fraction=False),
          GateField("max_abs_diff", "a fixed bound on ``tolerance_diff`` instead of the derived one", fraction=False))


def fields() -> dict[str, GateField]:
    """Every gate field: the tight bound's, then each output kind's (registry order)."""
    return {**{g.name: g for g in _TIGHT}, **kinds.gate_fields()}


def _rebuild(values: dict[str, float | None]) -> "Gate":
    return Gate(**values)


class Gate:
    """Thresholds one artifact x runtime must meet, per output; ``None`` means "not gated".

    Frozen: built with keyword fields (``fields()``: the tight bound's and every output kind's, each
    documented where it is declared), read as attributes, changed with :meth:`replace`. Settings
    (``GateField.setting``) say how a figure is measured and always have a value.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: float | None):
        known = fields()
        if unknown := sorted(set(values) - set(known)):
            raise TypeError(f"Gate has no field {unknown[0]!r}; fields: {', '.join(known)}")
        full = {name: values.get(name, g.default()) for name, g in known.items()}
        for name, value in full.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Gate.{name} must be a number >= 0, got {value!r}")
            if known[name].fraction and value > 1:
                raise ValueError(f"Gate.{name} is a fraction in [0, 1], got {value}")
        if full["tolerance_factor"] is not None and full["tolerance_factor"] < 1:
            raise ValueError(f"Gate.tolerance_factor must be >= 1, got {full['tolerance_factor']}")
        if all(v is None for n, v in full.items() if known[n].setting is None):
            raise ValueError("a Gate must set at least one threshold")
        object.__setattr__(self, "_values", MappingProxyType(full))

    def __getattr__(self, name: str) -> float | None:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"Gate has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Gate) and dict(self._values) == dict(other._values)

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        return "Gate(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()
                                   if v is not None and fields()[k].setting is None) + ")"

    def __reduce__(self):
        return _rebuild, (dict(self._values),)

    def replace(self, **changes: float | None) -> "Gate":
        """A copy with ``changes`` (checked like a new gate)."""
        return Gate(**{**self._values, **changes})

    @property
    def tight(self) -> bool:
        """Whether this gate bounds the difference itself (float32, fp16)."""
        return self.tolerance_factor is not None or self.max_abs_diff is not None

    def settings(self) -> dict[str, float]:
        """How the figures are measured: pass to ``figures.compare(..., settings=)``."""
        return {n: self._values[n] for n, g in fields().items() if g.setting is not None}

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

    def checks(self, f: Mapping[str, Any], *, labelled: bool) -> Iterator[Check]:
        """(figure, gate text, value, ok) for every figure this gate needs of one output's figures
        ``f``; a needed figure that is missing yields ok=False with value None."""
        def need(figure: str, text: str, ok) -> Check:
            value = f.get(figure)
            return figure, text, value, value is not None and bool(ok(value))

        yield need("finite", "== True", lambda v: v is True)
        if self.tight:
            bound = f.get("tolerance")
            yield need("tolerance_diff", f"<= {bound:.3g} ({f.get('tolerance_basis')})" if bound is not None
                       else f"<= tolerance ({f.get('tolerance_basis', 'not derived')})",
                       lambda v: bound is not None and v <= bound)
        kind = kinds.find(f.get("kind")) or kinds.get(kinds.FALLBACK)
        yield from kind.checks(self, need, labelled=labelled)

    def failures(self, figures: Mapping[str, Any], *, artifact: str, runtime: str, output: str = "",
                 labelled: bool = True) -> list["GateFailure"]:
        """One GateFailure per figure outside its threshold or missing."""
        return [GateFailure(artifact, runtime, figure, value, text, output=output)
                for figure, text, value, ok in self.checks(figures, labelled=labelled) if not ok]

    def to_dict(self) -> dict[str, float | None]:
        return dict(self._values)


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


class _Defaults(Mapping[Precision, Gate]):
    """The default gate of each precision class, from every field's default for that class (built
    when asked, so a kind registered later brings its own fields)."""

    def __getitem__(self, precision: Precision) -> Gate:
        return Gate(**{n: g.default(precision) for n, g in fields().items()})

    def __iter__(self) -> Iterator[Precision]:
        return iter(Precision)

    def __len__(self) -> int:
        return len(Precision)


DEFAULT_GATES: Mapping[Precision, Gate] = _Defaults()


@dataclass(frozen=True)
class GateTable:
    """The gates in force: per precision class, plus per-format overrides."""

    by_precision: Mapping[Precision, Gate]
    by_format: Mapping[str, Gate] = field(default_factory=dict)

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
    names = set(fields())
    # precision classes first, so a format override builds on an overridden class
    for key, changes in sorted(overrides.items(), key=lambda kv: kv[0] not in classes):
        if key not in classes and key not in INFO:
            raise UnknownNameError("gate class or format", key, [*classes, *INFO])
        if unknown := set(changes) - names:
            raise UnknownNameError("gate field", sorted(unknown)[0], sorted(names))
        base = by_precision[classes[key]] if key in classes else by_precision[precision_of(key)]
        try:
            gate = base.replace(**changes)
        except (ValueError, TypeError) as exc:
            raise EdgeportError(f"gate override for {key}: {exc}") from None
        if key in classes:
            by_precision[classes[key]] = gate
        else:
            by_format[key] = gate
    return GateTable(by_precision, by_format)
