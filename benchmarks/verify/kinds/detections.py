"""``detections``: boxes, scores and classes (numpy only): decode both layouts, class-wise NMS,
match to the reference.

Layouts: the raw YOLO-style head ``[B, 4+C, N]`` (cx, cy, w, h and C class scores per anchor:
decoded at ``score_threshold``, then class-wise NMS at ``nms_iou``) and post-NMS ``[B, N, 6]``
(x1, y1, x2, y2, score, class; rows scored below ``score_threshold`` are padding). An artifact's
detections are matched greedily (highest score first) to the reference's of the same image and
class at IoU >= ``match_iou``: recall = matched / reference detections, precision = matched /
artifact detections, mean IoU of the matches. The gate bounds recall, precision and mean IoU.

Detected (steps 4 and 5) on rank-3 outputs: post-NMS when the last axis is 6, column 5 whole numbers
>= 0, column 4 in [0, 1] and x2 >= x1, y2 >= y1 on every row scored above 0; a raw head [B, 4+C, N]
with N > 4+C when rows 4: lie in [0, 1], rows 2-3 (w, h) >= 0 and some box value lies outside [0, 1]
(pixel coordinates).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify.kinds.base import Bound, GateField, Kind, in01
from edgeport.export.registry import Precision
from edgeport.tables import fmt_num, fmt_pct

SCORE_THRESHOLD, NMS_IOU, MATCH_IOU = 0.25, 0.45, 0.5

Dets = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes [k, 4] x1y1x2y2, scores [k], classes [k]


def layout(a: np.ndarray) -> str:
    """``post_nms`` for [B, N, 6] (the last axis 6), else ``raw`` ([B, 4+C, N])."""
    raw = a.ndim == 3 and a.shape[1] >= 5 and a.shape[2] > a.shape[1]
    return "post_nms" if a.ndim == 3 and a.shape[-1] == 6 and not raw else "raw"


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of x1y1x2y2 boxes."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(axis=1)  # noqa: E731 - a one-line helper beside its uses
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by class-wise greedy NMS, highest score first."""
    keep: list[int] = []
    for c in np.unique(classes):
        idx = np.where(classes == c)[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        while len(idx):
            keep.append(int(idx[0]))
            if len(idx) == 1:
                break
            overlap = iou(boxes[idx[:1]], boxes[idx[1:]])[0]
            idx = idx[1:][overlap <= threshold]
    return np.array(sorted(keep, key=lambda i: -scores[i]), dtype=np.int64)


def decode(a: np.ndarray, *, score_threshold: float = SCORE_THRESHOLD, nms_iou: float = NMS_IOU) -> list[Dets]:
    """Per image: the detections of either layout, scored at or above ``score_threshold``."""
    a = a.astype(np.float64)
    out: list[Dets] = []
    post = layout(a) == "post_nms"
    for img in a:
        if post:
            live = img[img[:, 4] >= score_threshold]
            out.append((live[:, :4], live[:, 4], np.round(live[:, 5]).astype(np.int64)))
            continue
        cx, cy, w, h = img[:4]
        cls_scores = img[4:]
        classes, scores = cls_scores.argmax(axis=0), cls_scores.max(axis=0)
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        live = scores >= score_threshold
        boxes, scores, classes = boxes[live], scores[live], classes[live]
        keep = nms(boxes, scores, classes, nms_iou)
        out.append((boxes[keep], scores[keep], classes[keep]))
    return out


def match(ref: list[Dets], got: list[Dets], match_iou: float = MATCH_IOU) -> dict[str, Any]:
    """Recall, precision and mean IoU of ``got`` against ``ref`` (same class, IoU >= match_iou)."""
    n_ref = n_got = matched = 0
    ious: list[float] = []
    for (rb, _, rc), (gb, gs, gc) in zip(ref, got):
        n_ref, n_got = n_ref + len(rb), n_got + len(gb)
        if not len(rb) or not len(gb):
            continue
        m = iou(gb, rb)
        m[gc[:, None] != rc[None, :]] = 0.0
        used = np.zeros(len(rb), bool)
        for i in np.argsort(-gs, kind="stable"):
            cand = np.where(~used & (m[i] >= match_iou))[0]
            if len(cand):
                j = cand[m[i, cand].argmax()]
                used[j] = True
                matched += 1
                ious.append(float(m[i, j]))
    return {"ref_detections": n_ref, "detections": n_got, "matched_detections": matched,
            "detection_recall": matched / n_ref if n_ref else None,
            "detection_precision": matched / n_got if n_got else None,
            "mean_iou": float(np.mean(ious)) if ious else None}


def figures(ref: np.ndarray, out: np.ndarray, *, score_threshold: float = SCORE_THRESHOLD,
            nms_iou: float = NMS_IOU, match_iou: float = MATCH_IOU) -> dict[str, Any]:
    """Detection figures of ``out`` against ``ref`` (the same layout)."""
    kw = {"score_threshold": score_threshold, "nms_iou": nms_iou}
    f = match(decode(ref, **kw), decode(out, **kw), match_iou)
    f["detection_layout"] = layout(ref)
    if f["ref_detections"] == 0:
        f["detection_note"] = f"the reference has no detection scored >= {score_threshold:g}: recall cannot be measured"
    return f


def _is_post_nms(ref: np.ndarray) -> bool:
    if ref.ndim != 3 or ref.shape[-1] != 6 or not ref.size:
        return False
    cls, score = ref[..., 5], ref[..., 4]
    if not (np.allclose(cls, np.round(cls)) and cls.min() >= 0 and in01(score)):
        return False
    live = ref[score > 0]
    return bool(len(live)) and bool((live[:, 2] >= live[:, 0]).all() and (live[:, 3] >= live[:, 1]).all())


def _is_raw_head(ref: np.ndarray) -> bool:
    if ref.ndim != 3 or ref.shape[1] < 5 or ref.shape[2] <= ref.shape[1]:
        return False
    boxes, classes = ref[:, :4], ref[:, 4:]
    return in01(classes) and bool(boxes[:, 2:].min() >= 0) and not in01(boxes)


_Q, _F16 = Precision.QUANTIZED, Precision.FP16
MIN_RECALL = GateField("min_detection_recall", "reference detections matched (same class, IoU >= match_iou)",
                       {_F16: 0.95, _Q: 0.9})
MIN_PRECISION = GateField("min_detection_precision", "artifact detections matched to the reference's",
                          {_F16: 0.95, _Q: 0.9})
MIN_IOU = GateField("min_mean_iou", "mean IoU of the matched detections", {_F16: 0.9, _Q: 0.8})
SETTINGS = (GateField("score_threshold", "the score a detection needs to count", setting=SCORE_THRESHOLD),
            GateField("nms_iou", "class-wise NMS overlap of the raw head", setting=NMS_IOU),
            GateField("match_iou", "the IoU that matches a detection to the reference's", setting=MATCH_IOU))


def _matched(g: Any, b: float) -> str:
    return f">= {b:g} (score >= {g.score_threshold:g}, same class, IoU >= {g.match_iou:g})"


class Detections(Kind):
    name = "detections"
    summary = "boxes, scores and classes: raw YOLO-style head [B, 4+C, N] or post-NMS [B, N, 6]"
    rules = ((40, lambda ref, task: _is_post_nms(ref)), (50, lambda ref, task: _is_raw_head(ref)))
    gate_fields = (MIN_RECALL, MIN_PRECISION, MIN_IOU, *SETTINGS)
    bounds = (Bound("detection_recall", MIN_RECALL.name, ">=", _matched),
              Bound("detection_precision", MIN_PRECISION.name, ">=", _matched),
              Bound("mean_iou", MIN_IOU.name, ">=", _matched))
    worst_is_min = ("detection_recall", "detection_precision", "mean_iou")
    fix_figures = ("detection_recall", "detection_precision", "mean_iou", "matched_detections", "ref_detections",
                   "detection_layout")
    alternative_figures = ("detection_recall",)
    percent_figures = ("detection_recall",)

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y: np.ndarray | None,
                settings: Mapping[str, float], margin: float | None) -> dict[str, Any]:
        if not f["finite"]:
            return f
        return {**f, **figures(ref, out, **{s.name: settings[s.name] for s in SETTINGS if s.name in settings})}

    def text(self, f: Mapping[str, Any]) -> str:
        return (f"recall {fmt_pct(f.get('detection_recall'), 1)}, precision {fmt_pct(f.get('detection_precision'), 1)}"
                f", IoU {fmt_num(f.get('mean_iou'), '.3f')} ({f.get('ref_detections', 0)} ref boxes)")


KIND = Detections()
