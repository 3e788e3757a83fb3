"""What an output kind is: one :class:`Kind` object per kind module, and the gate fields it adds.

A kind knows how to recognise itself on a reference output (``rules``: detection steps, see the
registry), its figures against the reference (``figures``), the gate fields it adds to
:class:`~edgeport.benchmarks.verify.gates.Gate` with their default per precision class
(``gate_fields``), which of its figures each gate field bounds (``checks``), how a summary over
several outputs takes its worst figure, the figures `edgeport fix` keeps, ranks by and shows for its
alternatives, and a few words for the verify and fix tables (``text``). numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from edgeport.export.registry import Precision

#: ``(ref, task) -> bool``: whether a reference output is of this kind (a detection step).
Rule = Callable[[np.ndarray, str], bool]
#: ``(figure, gate text, value, ok)``: one gate check of one figure.
Check = tuple[str, str, Any, bool]
#: ``need(figure, gate text, ok(value) -> bool) -> Check``: a figure that is missing fails.
Need = Callable[[str, str, Callable[[Any], bool]], Check]


@dataclass(frozen=True)
class GateField:
    """One field of a gate: its default per precision class (missing: not gated) and what it means.

    A *setting* says how a figure is measured (a number every gate has); a *fraction* lies in [0, 1].
    """

    name: str
    doc: str
    defaults: Mapping[Precision, float] = field(default_factory=dict)
    setting: float | None = None  # the default of a setting field (the same in every class)
    fraction: bool = True

    def default(self, precision: Precision | None = None) -> float | None:
        if self.setting is not None:
            return self.setting
        return self.defaults.get(precision) if precision is not None else None


@dataclass(frozen=True)
class Bound:
    """A gate field that bounds one figure: ``figure op gate.<field>`` (op ``>=`` or ``<=``).

    ``text(gate, bound)``: the gate as the table and the failure say it (default ``"op bound"``).
    """

    figure: str
    field: str
    op: str
    text: Callable[[Any, float], str] | None = None

    def check(self, gate: Any, need: Need) -> Iterator[Check]:
        bound = getattr(gate, self.field)
        if bound is None:
            return
        text = self.text(gate, bound) if self.text else f"{self.op} {bound:g}"
        ok = (lambda v: v >= bound) if self.op == ">=" else (lambda v: v <= bound)
        yield need(self.figure, text, ok)


class Kind:
    """One output kind. Subclasses set the class attributes and override what they measure."""

    name: str = ""
    summary: str = ""
    #: (step, rule): detection steps this kind claims (the registry walks every kind's steps in order).
    rules: tuple[tuple[int, Rule], ...] = ()
    gate_fields: tuple[GateField, ...] = ()
    bounds: tuple[Bound, ...] = ()  # the gate fields this kind's checks read, in order
    worst_is_max: tuple[str, ...] = ()  # over several outputs a summary keeps the largest of these
    worst_is_min: tuple[str, ...] = ()  # ... and the smallest of these
    fix_figures: tuple[str, ...] = ()  # what a fix candidate's record keeps of this kind's figures
    rank_by: str | None = None  # the figure (lower is better) fix picks its base calibration by
    alternative_figures: tuple[str, ...] = ()  # what fix's alternatives table shows
    percent_figures: tuple[str, ...] = ()  # of those, the ones shown as percentages

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        """``f`` (the figures every kind has) with this kind's own added."""
        return f

    def checks(self, gate: Any, need: Need, *, labelled: bool) -> Iterator[Check]:
        """The checks of this kind's figures that ``gate`` sets (after finite and the tight bound)."""
        for b in self.bounds:
            yield from b.check(gate, need)

    def text(self, f: Mapping[str, Any]) -> str:
        """This kind's figures in a few words, for the verify and fix tables ("" when the table's
        columns already say them)."""
        return ""

    def pick(self, ref: np.ndarray) -> str:
        """The kind an output given as this one is (an alias picks a concrete kind from the values)."""
        return self.name

    def reference_accuracy(self, ref: np.ndarray, y: np.ndarray) -> float | None:
        """The reference's own accuracy on labels ``y`` (None: this kind has no accuracy)."""
        return None

    def __repr__(self) -> str:
        return f"<output kind {self.name}>"


def in01(a: np.ndarray) -> bool:
    """Every value in [0, 1] (within 1e-6), and at least one value."""
    return bool(a.size and a.min() >= -1e-6 and a.max() <= 1 + 1e-6)
