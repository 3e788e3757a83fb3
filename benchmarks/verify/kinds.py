"""What kind of output an output is: detected from the reference's values, or named by the user.

Kinds (the figures each gets are in ``figures.py``):

- ``probabilities`` / ``binary`` / ``scores``: one single-label classifier per input row (softmax,
  one sigmoid, logits);
- ``multilabel``: independent per-element probabilities (sigmoid maps of any rank);
- ``per_position``: a distribution over the last axis at every position ([B, T, C], [B, H, W, C]);
- ``embedding``: one vector per row (the last axis), compared by direction;
- ``detections``: boxes, scores and classes, raw YOLO-style head [B, 4+C, N] or post-NMS [B, N, 6];
- ``values``: anything else (regression): differences only.

Detection, in order, on the reference outputs (all finite):

1. task ``regression`` -> values;
2. rank 2, one column -> binary when in [0, 1] (classification), else values;
3. rows over the last axis non-negative and summing to 1 -> probabilities (rank 2) or
   per_position (rank >= 3);
4. rank 3, last axis 6, column 5 whole numbers >= 0, column 4 in [0, 1], and x2 >= x1, y2 >= y1 on
   every row scored above 0 -> detections (post-NMS);
5. rank 3 [B, 4+C, N] with N > 4+C, rows 4: in [0, 1], rows 2-3 (w, h) >= 0 and some box value
   outside [0, 1] (pixel coordinates) -> detections (raw head);
6. rank 2, every row of L2 norm 1 (within 1e-3), 2+ columns -> embedding;
7. every value in [0, 1] (rank >= 2, two or more values per row) -> multilabel;
8. rank 2 of a classifier -> scores; anything else -> values.

A user's ``NAME=KIND`` override wins (``classifier`` picks probabilities/binary/scores from the values).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from edgeport.errors import EdgeportError

PROBABILITIES, BINARY, SCORES, VALUES = "probabilities", "binary", "scores", "values"
MULTILABEL, PER_POSITION, EMBEDDING, DETECTIONS = "multilabel", "per_position", "embedding", "detections"
CLASSIFIER_KINDS = (PROBABILITIES, BINARY, SCORES)
CLASSIFIER = "classifier"
KINDS = (CLASSIFIER, *CLASSIFIER_KINDS, MULTILABEL, PER_POSITION, EMBEDDING, DETECTIONS, VALUES)


def _in01(a: np.ndarray) -> bool:
    return bool(a.size and a.min() >= -1e-6 and a.max() <= 1 + 1e-6)


def _is_post_nms(ref: np.ndarray) -> bool:
    if ref.ndim != 3 or ref.shape[-1] != 6 or not ref.size:
        return False
    cls, score = ref[..., 5], ref[..., 4]
    if not (np.allclose(cls, np.round(cls)) and cls.min() >= 0 and _in01(score)):
        return False
    live = ref[score > 0]
    return bool(len(live)) and bool((live[:, 2] >= live[:, 0]).all() and (live[:, 3] >= live[:, 1]).all())


def _is_raw_head(ref: np.ndarray) -> bool:
    if ref.ndim != 3 or ref.shape[1] < 5 or ref.shape[2] <= ref.shape[1]:
        return False
    boxes, classes = ref[:, :4], ref[:, 4:]
    return _in01(classes) and bool(boxes[:, 2:].min() >= 0) and not _in01(boxes)


def detect(ref: np.ndarray, task: str) -> str:
    """The kind of one reference output (see the module docstring for the rule)."""
    if task == "regression":
        return VALUES
    if ref.ndim < 2 or not len(ref):
        rows = ref.reshape(len(ref), -1) if len(ref) else ref.reshape(0, 1)
        return BINARY if rows.shape[1] == 1 and _in01(rows) and task == "classification" else VALUES
    if not np.isfinite(ref).all():
        return VALUES
    if ref.ndim == 2 and ref.shape[1] == 1:
        return BINARY if _in01(ref) and task == "classification" else VALUES
    last = ref.reshape(-1, ref.shape[-1])
    if ref.shape[-1] >= 2 and last.min() >= -1e-6 and np.allclose(last.sum(axis=1), 1.0, atol=1e-3):
        return PROBABILITIES if ref.ndim == 2 else PER_POSITION
    if _is_post_nms(ref) or _is_raw_head(ref):
        return DETECTIONS
    if ref.ndim == 2 and np.allclose(np.linalg.norm(ref.astype(np.float64), axis=1), 1.0, atol=1e-3):
        return EMBEDDING
    if _in01(ref) and ref[0].size >= 2:
        return MULTILABEL
    return SCORES if ref.ndim == 2 and task == "classification" else VALUES


def classifier_kind(ref: np.ndarray) -> str:
    """probabilities, binary or scores for an output the user calls a classifier."""
    rows = ref.reshape(len(ref), -1)
    if rows.shape[1] == 1:
        return BINARY
    ok = np.isfinite(rows).all() and rows.min() >= -1e-6 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3)
    return PROBABILITIES if ok else SCORES


def parse_overrides(items: list[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["NAME=KIND", ...]`` (or a mapping) -> {name: kind}; a bad item or kind is one line."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, Mapping) else [str(i).partition("=")[::2] for i in items]
    out: dict[str, str] = {}
    for name, kind in pairs:
        name, kind = str(name).strip(), str(kind).strip().lower()
        if not name or not kind:
            raise EdgeportError(f"--output-kind {name}={kind}: expected NAME=KIND, KIND one of {', '.join(KINDS)}")
        if kind not in KINDS:
            raise EdgeportError(f"--output-kind {name}={kind}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        out[name] = kind
    return out


def resolve(outputs: Mapping[str, np.ndarray], task: str, overrides: Mapping[str, str] | None = None,
            *, where: str = "") -> dict[str, str]:
    """{output name: kind} for every reference output; an override naming no output is one line."""
    overrides = dict(overrides or {})
    if unknown := sorted(set(overrides) - set(outputs)):
        raise EdgeportError(f"{where + ': ' if where else ''}--output-kind {unknown[0]}: no such output; "
                            f"outputs: {', '.join(outputs)}")
    kinds = {}
    for name, ref in outputs.items():
        kind = overrides.get(name) or detect(ref, task)
        kinds[name] = classifier_kind(ref) if kind == CLASSIFIER else kind
    return kinds
