"""The output kinds: the one place that knows each kind's name and the module that is the kind.

A kind is one module in this package exposing one :class:`~.base.Kind` (how it detects itself, its
figures, its gate fields per precision class, its checks, what fix keeps, ranks by and shows, its
words in the tables) plus one row in ``ROWS``; verify, fix, bench, report and the targets ask this
registry and never spell a kind's name or its own figures. numpy only; modules load on first use.

Kinds: ``probabilities`` / ``binary`` / ``scores`` (one single-label classifier per input row:
softmax, one sigmoid, logits; ``classifier`` picks one of them from the values), ``multilabel``,
``per_position``, ``embedding``, ``detections``, ``values`` (see each module).

Detection walks every kind's rules (``Kind.rules``: ``(step, rule)``) in step order on a reference
output; the first rule that holds names the kind, and an output no rule claims is ``FALLBACK``:

1. (10) task ``regression`` -> values;
2. (20) rank 2, one column (or one value per row) in [0, 1] of a classification model -> binary;
   (21) rank < 2, no rows, any non-finite value, or one column -> values;
3. (30, 31) rows over the last axis non-negative and summing to 1 -> probabilities (rank 2) or
   per_position (rank >= 3);
4. (40) rank 3, last axis 6, post-NMS boxes -> detections;
5. (50) rank 3 [B, 4+C, N], a raw YOLO-style head in pixel coordinates -> detections;
6. (60) rank 2, every row of L2 norm 1 (within 1e-3) -> embedding;
7. (70) every value in [0, 1], two or more values per row -> multilabel;
8. (80) rank 2 of a classification model -> scores; anything else -> values.

Rules after step 21 see finite, non-empty outputs of rank >= 2. A user's ``NAME=KIND`` wins.

"A classification model" (steps 20 and 80) is the test set's task: a model directory's, or for a bare
artifact its .npz's integer ``y_test`` or class names in either file's metadata; a bare artifact with
none of them is of task ``unknown`` (``verify.plan.bare``). And where the class names are known, only an
output one or ``len(labels)`` wide is the classifier's: another output of the same model (63 landmark
values beside a Left/Right head) is detected under task ``unknown`` (``task_of``). So a rank-2 float
output nothing ties to classes is ``values``, never logits, unless ``--output-kind NAME=classifier``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import GateField, Kind
from edgeport.errors import EdgeportError
from edgeport.lazy import resolve as _resolve
from edgeport.training.testset import UNKNOWN_TASK

_P = "edgeport.benchmarks.verify.kinds."
#: name -> "module:attr" of its Kind object (the order of `--output-kind`'s list and of the gate fields).
ROWS: dict[str, str] = {
    "classifier": _P + "classifier:CLASSIFIER",
    "probabilities": _P + "classifier:PROBABILITIES",
    "binary": _P + "classifier:BINARY",
    "scores": _P + "classifier:SCORES",
    "multilabel": _P + "multilabel:KIND",
    "per_position": _P + "per_position:KIND",
    "embedding": _P + "embedding:KIND",
    "detections": _P + "detections:KIND",
    "values": _P + "values:KIND",
}
FALLBACK = "values"  # the kind of an output no rule claims, and whose gate a figure set of no known kind gets
#: Figures the verify, fix and report tables have a column of their own for (a classifier's headline
#: figures and a regression's error); every other figure a kind shows through ``Kind.text``.
COLUMNS = ("accuracy", "keras_accuracy", "accuracy_delta_points", "agreement", "confident_agreement",
           "kl_divergence", "mae")
_LOADED: dict[str, Kind] = {}


def names() -> tuple[str, ...]:
    return tuple(ROWS)


def find(name: Any) -> Kind | None:
    """The Kind named ``name``, or None for no registered kind."""
    spec = ROWS.get(name) if isinstance(name, str) else None
    if spec is None:
        return None
    if spec not in _LOADED:
        _LOADED[spec] = _resolve(spec)
    return _LOADED[spec]


def get(name: str) -> Kind:
    kind = find(name)
    if kind is None:
        raise ValueError(f"unknown output kind {name!r}; kinds: {', '.join(ROWS)}")
    return kind


def every() -> list[Kind]:
    """Each registered Kind once, in registry order."""
    out: list[Kind] = []
    for name in ROWS:
        kind = get(name)
        if kind not in out:
            out.append(kind)
    return out


def gate_fields() -> dict[str, GateField]:
    """Every kind's gate fields by name, in registry order (a field several kinds read is listed once)."""
    return {g.name: g for k in every() for g in k.gate_fields}


def _union(attr: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for k in every() for n in getattr(k, attr)))


def worst_is_max() -> tuple[str, ...]:
    return _union("worst_is_max")


def worst_is_min() -> tuple[str, ...]:
    return _union("worst_is_min")


def fix_figures() -> tuple[str, ...]:
    """The figures a fix candidate's record keeps (every kind's, in registry order)."""
    return _union("fix_figures")


def alternative_figures() -> tuple[str, ...]:
    """The figures fix's alternatives table shows, in registry order."""
    return _union("alternative_figures")


def percent_figures() -> tuple[str, ...]:
    return _union("percent_figures")


def rank(figures: Mapping[str, Any]) -> float:
    """How good a candidate's figures are for fix's choice of base calibration (lower is better): the
    first ranking figure a kind names that the figures have; infinity when none."""
    by = dict.fromkeys(k.rank_by for k in every() if k.rank_by)
    return next((figures[n] for n in by if n in figures), float("inf"))


def text(f: Mapping[str, Any]) -> str:
    """The kind's own figures in a few words ("" for no kind, or one whose figures have columns)."""
    kind = find(f.get("kind"))
    return kind.text(f) if kind else ""


def reference_accuracy(kind: str, ref: np.ndarray, y: np.ndarray) -> float | None:
    return get(kind).reference_accuracy(ref, y)


def task_of(ref: np.ndarray, task: str, labels: tuple[str, ...] = ()) -> str:
    """The task one output is detected under: a classification model's output that is neither one
    value per row nor ``len(labels)`` wide (labels known) is none of its classes': ``UNKNOWN_TASK``."""
    if task != "classification" or not labels or ref.ndim < 2 or not len(ref):
        return task
    width = ref.reshape(len(ref), -1).shape[1]
    return task if width in (1, len(labels)) else UNKNOWN_TASK


def detect(ref: np.ndarray, task: str, labels: tuple[str, ...] = ()) -> str:
    """The kind of one reference output (see the module docstring for the rule)."""
    task = task_of(ref, task, labels)
    steps = sorted(((step, kind.name, rule) for kind in every() for step, rule in kind.rules), key=lambda s: s[0])
    return next((name for _, name, rule in steps if rule(ref, task)), FALLBACK)


def parse_overrides(items: list[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["NAME=KIND", ...]`` (or a mapping) -> {name: kind}; a bad item or kind is one line."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, Mapping) else [str(i).partition("=")[::2] for i in items]
    out: dict[str, str] = {}
    for name, kind in pairs:
        name, kind = str(name).strip(), str(kind).strip().lower()
        if not name or not kind:
            raise EdgeportError(f"--output-kind {name}={kind}: expected NAME=KIND, KIND one of {', '.join(ROWS)}")
        if kind not in ROWS:
            raise EdgeportError(f"--output-kind {name}={kind}: unknown kind {kind!r}; kinds: {', '.join(ROWS)}")
        out[name] = kind
    return out


def resolve(outputs: Mapping[str, np.ndarray], task: str, overrides: Mapping[str, str] | None = None,
            *, where: str = "", labels: tuple[str, ...] = ()) -> dict[str, str]:
    """{output name: kind} for every reference output; an override naming no output is one line."""
    overrides = dict(overrides or {})
    if unknown := sorted(set(overrides) - set(outputs)):
        raise EdgeportError(f"{where + ': ' if where else ''}--output-kind {unknown[0]}: no such output; "
                            f"outputs: {', '.join(outputs)}")
    return {name: get(overrides.get(name) or detect(ref, task, labels)).pick(ref) for name, ref in outputs.items()}
