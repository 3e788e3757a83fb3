"""Detection figures (numpy only): decode both layouts, class-wise NMS, match to the reference.

Layouts: the raw YOLO-style head ``[B, 4+C, N]`` (cx, cy, w, h and C class scores per anchor:
decoded at ``score_threshold``, then class-wise NMS at ``nms_iou``) and post-NMS ``[B, N, 6]``
(x1, y1, x2, y2, score, class; rows scored below ``score_threshold`` are padding). An artifact's
detections are matched greedily (highest score first) to the reference's of the same image and
class at IoU >= ``match_iou``: recall = matched / reference detections, precision = matched /
artifact detections, mean IoU of the matches.
"""
from __future__ import annotations

from typing import Any

import numpy as np

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
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(axis=1)  # noqa: E731
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
