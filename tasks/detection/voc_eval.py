"""PASCAL VOC 2007 mean AP at IoU 0.5, with VOC's own ``difficult`` rule.

The COCO metrics of this track (``metrics.py``) treat a VOC ``difficult`` object as a COCO crowd
region, whose IoU is taken over the *detection's* area: a small detection inside a large difficult
object is then ignored. VOC's development kit (``VOCevaldet``) does otherwise, and this module
follows it:

* per class, the detections of every test image are sorted by score (highest first) and each is
  matched to the ground-truth object of its class in its image with the largest IoU (the usual
  intersection over union; the loader's 0-based boxes ``(xmin - 1, ymin - 1, xmax, ymax)`` make it
  the devkit's ``+1`` pixel-inclusive IoU);
* IoU of at least 0.5 (the devkit's ``ovmax >= minoverlap``) with a *difficult* object: the
  detection is ignored (neither true nor false positive); with a non-difficult object not yet
  taken: a true positive; already taken (a duplicate) or IoU below 0.5: a false positive;
* recall is over the non-difficult objects; AP is VOC2007's 11-point interpolated average
  (the mean over t = 0, 0.1, ..., 1 of the highest precision at a recall >= t);
* ``voc07_map50`` is the mean AP over the classes with at least one non-difficult object
  (a class without one has no AP, as in the devkit, and is ``None`` in ``voc07_ap50_per_class``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...data_recipes.sceneset import SceneSet

IOU = 0.5


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one XYXY box with each of ``boxes`` (n, 4)."""
    if len(boxes) == 0:
        return np.zeros(0)
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, np.finfo(float).eps)


def eleven_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007's 11-point interpolated AP."""
    points = []
    for t in np.linspace(0.0, 1.0, 11):
        above = precision[recall >= t]
        points.append(float(above.max()) if above.size else 0.0)
    return float(np.mean(points))


def class_ap(test: SceneSet, predictions: Sequence[Mapping[str, Any]], label: int) -> float | None:
    """VOC07 AP@0.5 of one class (None without a non-difficult object of it)."""
    gts, taken = [], []
    n_pos = 0
    for t in test.targets:
        keep = _np(t["labels"]) == label
        boxes = _np(t["boxes"]).astype(np.float64).reshape(-1, 4)[keep]
        difficult = _np(t["difficult"]).astype(bool).reshape(-1)[keep]
        gts.append((boxes, difficult))
        taken.append(np.zeros(len(boxes), dtype=bool))
        n_pos += int((~difficult).sum())
    if n_pos == 0:
        return None
    dets = []
    for i, p in enumerate(predictions):
        labels = _np(p["labels"]).reshape(-1)
        scores = _np(p["scores"]).astype(np.float64).reshape(-1)
        boxes = _np(p["boxes"]).astype(np.float64).reshape(-1, 4)
        dets += [(float(s), i, b) for s, b, lab in zip(scores, boxes, labels) if int(lab) == label]
    dets.sort(key=lambda d: -d[0])  # stable: ties keep image order, as the devkit's sort
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for d, (_, image, box) in enumerate(dets):
        boxes, difficult = gts[image]
        overlaps = iou_one_to_many(box, boxes)
        best = int(np.argmax(overlaps)) if len(overlaps) else -1
        if best >= 0 and overlaps[best] >= IOU:
            if difficult[best]:
                continue  # neither a hit nor a miss
            if not taken[image][best]:
                tp[d], taken[image][best] = 1, True
            else:
                fp[d] = 1
        else:
            fp[d] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / n_pos
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    return eleven_point_ap(recall, precision)


def voc07_metrics(test: SceneSet, predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``voc07_map50`` and ``voc07_ap50_per_class`` (see the module docstring)."""
    per_class = [class_ap(test, predictions, k) for k in range(test.num_classes)]
    defined = [v for v in per_class if v is not None]
    return {"voc07_map50": float(np.mean(defined)) if defined else None, "voc07_ap50_per_class": per_class}
