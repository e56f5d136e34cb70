"""Detection metrics of the object-level track (DESIGN.md "Metrics").

Every number comes from pycocotools' ``COCOeval`` (iouType ``"bbox"``; not re-implemented): the
ground truth of a :class:`~imbench.data_recipes.sceneset.SceneSet` is turned into an in-memory
COCO dataset (:func:`coco_gt`), the predictions of a torchvision detector into COCO results
(:func:`coco_dets`), and the summary values are read from ``COCOeval.eval`` the way
``COCOeval.summarize`` reads them.  Results are plain Python floats / lists / None, so a record
can be ``json.dumps``-ed as is.

Conventions (see ``METRIC_NOTES``):

* image ids are ``index + 1``, annotation ids ``1..n`` in set order, category ids ``label + 1``;
* a GT box's ``area`` is ``target["area"]`` (what the size buckets read), never pycocotools'
  ``w * h`` fallback; a detection's area is its box ``w * h`` (set by ``COCO.loadRes``), times the
  image's ``area_scale`` for a resized real set (whose GT areas are in original pixels): an
  unmatched detection is ignored outside a size bucket by that area;
* ``difficult`` objects are COCO ``iscrowd`` regions: neither hits nor misses;
* COCO's ``-1`` ("no GT to evaluate") becomes ``None``; with GT but no detection at all the
  values are COCOeval's own ``0.0`` (the evaluation runs on an empty result set).
"""
from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ...data_recipes.sceneset import SceneSet

# COCO's size buckets (pycocotools Params.setDetParams), in px^2 of the GT ``area``
COCO_AREA_RANGES: dict[str, list[float]] = {
    "all": [0.0, 1e5 ** 2],
    "small": [0.0, 32.0 ** 2],
    "medium": [32.0 ** 2, 96.0 ** 2],
    "large": [96.0 ** 2, 1e5 ** 2],
}
AREA_LABELS = ("all", "small", "medium", "large")  # COCOeval's areaRngLbl order
# occlusion buckets: [lo, hi) of target["occlusion"]
OCCLUSION_BUCKETS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.1),
    "partial": (0.1, 0.3),
    "heavy": (0.3, float("inf")),
}
OCCLUDED_FROM = 0.1  # recall_occluded: objects with occlusion >= this

METRIC_NOTES: dict[str, str] = {
    "ap": "COCO AP@[.5:.95]: pycocotools COCOeval (bbox), mean of eval['precision'][T, R, K, "
          "area 'all', maxDets last] over the entries > -1 (= COCOeval.stats[0] when max_dets is "
          "100; read directly because summarize() hard-codes maxDets=100 for stats[0]); None if "
          "no class has a non-difficult GT object",
    "ap50": "COCO AP at IoU 0.5, area 'all', maxDets last (COCOeval.stats[1]); None as for ap",
    "ap75": "COCO AP at IoU 0.75, area 'all', maxDets last (COCOeval.stats[2]); None as for ap",
    "ap_small": "COCO AP@[.5:.95] on the 'small' size bucket (COCOeval.stats[3]); buckets read "
                "the GT target['area'] (and the box w*h of unmatched detections, which are ignored "
                "outside the bucket); COCO's -1 (no GT object in the bucket) is reported as None",
    "ap_medium": "as ap_small on the 'medium' bucket (COCOeval.stats[4]); None if no GT in it",
    "ap_large": "as ap_small on the 'large' bucket (COCOeval.stats[5]); None if no GT in it",
    "per_class_ap": "AP@[.5:.95] of each class 0..K-1: mean of eval['precision'][:, :, k, area "
                    "'all', maxDets last] over the entries > -1 (what COCOeval with params.catIds "
                    "= [k] reports as stats[0]); None for a class without a non-difficult GT "
                    "object (its false positives then lower no AP, as in COCO)",
    "rare_ap": "mean of per_class_ap over the minority classes that have one (None values left "
               "out); None if minority is empty or none of them has GT",
    "ap_r": "LVIS AP_r: mean of per_class_ap over the 'rare' frequency group of the training set "
            "(class_counts.frequency_groups: LVIS's image-count groups scaled to the set); None if "
            "the group is empty or none of its classes has GT (a balanced set is all 'frequent')",
    "ap_c": "LVIS AP_c: as ap_r over the 'common' group",
    "ap_f": "LVIS AP_f: as ap_r over the 'frequent' group",
    "voc07_map50": "VOC-layout sets only: PASCAL VOC 2007 mAP at IoU 0.5 with VOC's own difficult "
                   "rule (a detection overlapping a difficult object by IoU >= 0.5 is ignored; "
                   "11-point interpolated AP; tasks/detection/voc_eval.py), mean over the classes "
                   "with a non-difficult object; voc07_ap50_per_class per class",
    "ar100": "COCO AR@max_dets (AR@100 by default), IoU .5:.95, area 'all' (COCOeval.stats[8]): "
             "mean of eval['recall'] over the entries > -1; None as for ap",
    "recall_by_occlusion": "share of the non-difficult GT objects of each occlusion bucket "
                           "(none: occlusion < 0.1 -- includes the 'unknown' 0 --, partial: "
                           "0.1 <= occ < 0.3, heavy: occ >= 0.3) that COCOeval's own greedy "
                           "matching pairs with a same-class detection at IoU 0.5 (area 'all', "
                           "top max_dets detections per image and class; evalImgs gtMatches, "
                           "mapped back through gtIds); None for an empty bucket",
    "recall_occluded": "the same recall over all non-difficult objects with occlusion >= 0.1; "
                       "None if there are none",
    "n_by_occlusion": "non-difficult GT objects in each occlusion bucket",
    "n_gt": "non-difficult GT objects (the denominators of recall / AP)",
    "n_difficult": "difficult GT objects: COCO iscrowd regions, neither a hit nor a miss -- "
                   "a detection matching one (crowd IoU = intersection / detection area) is "
                   "ignored, never a false positive, and the object is never a missed positive",
    "n_dets": "detections passed in (all of them, before COCOeval keeps the top max_dets per "
              "image and class)",
    "max_dets": "params.maxDets used, [1, 10, max_dets]; AP / AR read the last entry",
    "area_ranges": "params.areaRng used, by label (COCO's defaults unless area_ranges is given)",
}


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().as_subclass(torch.Tensor).numpy()
    return np.asarray(x)


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def coco_gt(test: SceneSet) -> COCO:
    """The ground truth of ``test`` as an in-memory pycocotools ``COCO`` (image id = index + 1,
    annotation ids 1..n in set order, category id = label + 1, bbox xywh from XYXY, ``area`` =
    ``target["area"]``, ``iscrowd`` = ``target["difficult"]``; each annotation also keeps
    ``occlusion``, a field pycocotools ignores)."""
    images, annotations = [], []
    ann_id = 0
    for i, (img, t) in enumerate(zip(test.images, test.targets)):
        image_id = i + 1
        images.append({"id": image_id, "width": int(img.shape[-1]), "height": int(img.shape[-2])})
        boxes = _np(t["boxes"]).astype(np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        xywh = boxes.copy()
        xywh[:, 2:] -= boxes[:, :2]
        labels = _np(t["labels"]).reshape(-1).tolist()
        area = _np(t["area"]).astype(np.float64).reshape(-1).tolist()
        crowd = _np(t["difficult"]).astype(bool).reshape(-1).tolist()
        occlusion = (_np(t["occlusion"]).astype(np.float64).reshape(-1).tolist() if "occlusion" in t
                     else [0.0] * len(boxes))
        if not (len(labels) == len(area) == len(crowd) == len(occlusion) == len(boxes)):
            raise ValueError(f"target {i}: boxes, labels, area, difficult and occlusion differ in length")
        for box, label, a, c, occ in zip(xywh.tolist(), labels, area, crowd, occlusion):
            if not 0 <= label < test.num_classes:
                raise ValueError(f"target {i} holds label {label} outside 0..{test.num_classes - 1}")
            ann_id += 1
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": box, "area": float(a), "iscrowd": int(c),
                                "occlusion": float(occ)})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": k + 1, "name": str(name)}
                                 for k, name in enumerate(test.class_names)]}
    with _quiet():
        gt.createIndex()
    return gt


def coco_dets(predictions: Sequence[Mapping[str, Any]], num_classes: int | None = None) -> list[dict]:
    """Detections of a torchvision detector (one dict per image: ``boxes`` XYXY (m, 4),
    ``scores`` (m,), ``labels`` (m,) in 0..K-1) as COCO results for ``COCO.loadRes``:
    ``{"image_id": index + 1, "category_id": label + 1, "bbox": xywh, "score": s}``."""
    out: list[dict] = []
    for i, p in enumerate(predictions):
        boxes = _np(p["boxes"]).astype(np.float64).reshape(-1, 4)
        scores = _np(p["scores"]).astype(np.float64).reshape(-1).tolist()
        labels = _np(p["labels"]).reshape(-1).tolist()
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(f"prediction {i}: boxes, scores and labels differ in length")
        if labels and num_classes is not None and not (0 <= min(labels) and max(labels) < num_classes):
            raise ValueError(f"prediction {i} holds labels outside 0..{num_classes - 1}")
        xywh = boxes.copy()
        xywh[:, 2:] -= boxes[:, :2]
        image_id = i + 1
        out.extend({"image_id": image_id, "category_id": int(label) + 1, "bbox": box, "score": s}
                   for box, s, label in zip(xywh.tolist(), scores, labels))
    return out


def _load_results(gt: COCO, dets: list[dict]) -> COCO:
    """``gt.loadRes(dets)``; an empty result set (loadRes fails on ``[]``) is built the way
    loadRes would build it, so COCOeval still runs (precision / recall 0 where there is GT)."""
    if dets:
        with _quiet():
            return gt.loadRes(dets)
    res = COCO()
    res.dataset = {"images": list(gt.dataset["images"]),
                   "categories": copy.deepcopy(gt.dataset["categories"]), "annotations": []}
    with _quiet():
        res.createIndex()
    return res


def _mean_defined(s: np.ndarray) -> float | None:
    """COCOeval._summarize's mean over the entries > -1; None where it says -1."""
    s = s[s > -1]
    return float(np.mean(s)) if s.size else None


def _area_ranges(area_ranges: Mapping[str, Sequence[float]] | None) -> dict[str, list[float]]:
    if area_ranges is None:
        return {k: list(v) for k, v in COCO_AREA_RANGES.items()}
    missing = [k for k in ("small", "medium", "large") if k not in area_ranges]
    unknown = [k for k in area_ranges if k not in AREA_LABELS]
    if missing or unknown:
        raise ValueError(f"area_ranges needs the keys small, medium, large (and optionally all); "
                         f"missing {missing}, unknown {unknown}")
    out = {"all": list(COCO_AREA_RANGES["all"])}
    for k, v in area_ranges.items():
        lo, hi = (float(x) for x in v)
        if not lo <= hi:
            raise ValueError(f"area range {k} = {v} is not [lo, hi]")
        out[k] = [lo, hi]
    return {k: out[k] for k in AREA_LABELS}


def detection_metrics(test: SceneSet, predictions: Sequence[Mapping[str, Any]], *,
                      minority: Sequence[int], area_ranges: Mapping[str, Sequence[float]] | None = None,
                      max_dets: int = 100, groups: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """COCO AP / AR (overall, by size, per class, minority mean, LVIS frequency groups when
    ``groups`` -- rare / common / frequent class lists -- is given) and recall by occlusion of
    ``predictions`` (one dict per image of ``test``, same order) -- see ``METRIC_NOTES``."""
    if len(predictions) != len(test):
        raise ValueError(f"{len(predictions)} predictions for {len(test)} images")
    num_classes = test.num_classes
    minority = sorted({int(c) for c in minority})
    if any(c < 0 or c >= num_classes for c in minority):
        raise ValueError(f"minority classes {minority} outside 0..{num_classes - 1}")
    max_dets = int(max_dets)
    if max_dets < 10:
        raise ValueError(f"max_dets must be >= 10 (params.maxDets = [1, 10, max_dets]), got {max_dets}")
    ranges = _area_ranges(area_ranges)

    gt = coco_gt(test)
    dets = coco_dets(predictions, num_classes)
    n_dets = len(dets)
    dt = _load_results(gt, dets)
    scale = test.area_scale.tolist()
    if any(v != 1.0 for v in scale):  # a resized real set: detections' areas in the GT's (original) units
        for ann in dt.dataset["annotations"]:  # the same dicts as dt.anns (createIndex keeps them)
            ann["area"] = ann["area"] * scale[ann["image_id"] - 1]

    ev = COCOeval(gt, dt, iouType="bbox")
    p = ev.params
    p.areaRng = [list(ranges[k]) for k in AREA_LABELS]
    p.areaRngLbl = list(AREA_LABELS)
    p.maxDets = [1, 10, max_dets]
    with _quiet():
        ev.evaluate()
        ev.accumulate()

    precision = ev.eval["precision"]  # [T, R, K, A, M]
    recall = ev.eval["recall"]  # [T, K, A, M]
    iou_thrs = p.iouThrs
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    cat_index = {c: k for k, c in enumerate(p.catIds)}  # COCOeval's category order

    per_class: list[float | None] = []
    for label in range(num_classes):
        k = cat_index[label + 1]
        per_class.append(_mean_defined(precision[:, :, k, 0, -1]))
    rare = [per_class[c] for c in minority if per_class[c] is not None]

    # recall by occlusion, from COCOeval's own matching at IoU 0.5 (area 'all', maxDet last)
    occlusion_of = {a["id"]: a["occlusion"] for a in gt.dataset["annotations"]}
    matched: dict[int, bool] = {}  # non-ignored GT id -> matched at IoU 0.5
    n_img, n_area = len(p.imgIds), len(p.areaRng)
    for k in range(len(p.catIds)):
        base = k * n_area * n_img  # area index 0 ('all')
        for e in ev.evalImgs[base:base + n_img]:
            if e is None:
                continue
            hits = e["gtMatches"][t50]
            for j, (gid, ignored) in enumerate(zip(e["gtIds"], e["gtIgnore"])):
                if not ignored:
                    matched[int(gid)] = bool(hits[j] > 0)
    by_bucket: dict[str, list[bool]] = {name: [] for name in OCCLUSION_BUCKETS}
    occluded: list[bool] = []
    for gid, hit in matched.items():
        occ = occlusion_of[gid]
        for name, (lo, hi) in OCCLUSION_BUCKETS.items():
            if lo <= occ < hi:
                by_bucket[name].append(hit)
                break
        if occ >= OCCLUDED_FROM:
            occluded.append(hit)

    def _share(hits: list[bool]) -> float | None:
        return float(np.mean(hits)) if hits else None

    n_difficult = sum(int(a["iscrowd"]) for a in gt.dataset["annotations"])
    by_group = {}
    for key, name in (("ap_r", "rare"), ("ap_c", "common"), ("ap_f", "frequent")):
        values = [per_class[c] for c in (groups or {}).get(name, []) if per_class[c] is not None]
        by_group[key] = float(np.mean(values)) if values else None
    return {
        **by_group,
        "ap": _mean_defined(precision[:, :, :, 0, -1]),
        "ap50": _mean_defined(precision[t50, :, :, 0, -1]),
        "ap75": _mean_defined(precision[t75, :, :, 0, -1]),
        "ap_small": _mean_defined(precision[:, :, :, 1, -1]),
        "ap_medium": _mean_defined(precision[:, :, :, 2, -1]),
        "ap_large": _mean_defined(precision[:, :, :, 3, -1]),
        "per_class_ap": per_class,
        "rare_ap": float(np.mean(rare)) if rare else None,
        "ar100": _mean_defined(recall[:, :, 0, -1]),
        "recall_by_occlusion": {name: _share(h) for name, h in by_bucket.items()},
        "recall_occluded": _share(occluded),
        "n_by_occlusion": {name: len(h) for name, h in by_bucket.items()},
        "n_gt": len(gt.dataset["annotations"]) - n_difficult,
        "n_difficult": n_difficult,
        "n_dets": n_dets,
        "max_dets": [1, 10, max_dets],
        "area_ranges": ranges,
    }
