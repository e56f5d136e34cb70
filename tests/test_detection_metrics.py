"""Tests of tasks/detection/metrics.py against pycocotools' COCOeval run directly on a COCO
dataset built by hand here, and on small hand-checked cases."""
from __future__ import annotations

import contextlib
import io
import json
from typing import ClassVar

import numpy as np
import pytest
import torch
from imbench.data_recipes.sceneset import SceneSet, make_target
from imbench.tasks.detection import metrics as M
from imbench.tasks.detection.metrics import (
    METRIC_NOTES,
    coco_dets,
    coco_gt,
    detection_metrics,
)
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

K = 4
CANVAS = 160
ONE = pytest.approx(1.0, abs=1e-12)  # COCO's precision tp / (tp + fp + eps) stops 2e-16 short
STAT_KEYS = {0: "ap", 1: "ap50", 2: "ap75", 3: "ap_small", 4: "ap_medium", 5: "ap_large", 8: "ar100"}


# ---------------------------------------------------------------------------------------- helpers
def obj(box, label, *, area=None, occlusion=0.0, difficult=False) -> dict:
    box = [float(v) for v in box]
    return {"box": box, "label": int(label), "occlusion": float(occlusion), "difficult": bool(difficult),
            "area": float((box[2] - box[0]) * (box[3] - box[1]) if area is None else area)}


def det(box, label, score) -> dict:
    return {"box": [float(v) for v in box], "label": int(label), "score": float(score)}


def scene_set(gt_raw: list[list[dict]], canvas: int = CANVAS, k: int = K) -> SceneSet:
    images, targets = [], []
    for objs in gt_raw:
        images.append(torch.zeros((1, canvas, canvas), dtype=torch.uint8))
        targets.append(make_target(
            [o["box"] for o in objs], [o["label"] for o in objs], (canvas, canvas),
            area=[o["area"] for o in objs], occlusion=[o["occlusion"] for o in objs],
            difficult=[o["difficult"] for o in objs]))
    return SceneSet(images, targets, [f"c{c}" for c in range(k)])


def predictions(det_raw: list[list[dict]]) -> list[dict]:
    return [{"boxes": torch.tensor([d["box"] for d in ds], dtype=torch.float32).reshape(-1, 4),
             "scores": torch.tensor([d["score"] for d in ds], dtype=torch.float32),
             "labels": torch.tensor([d["label"] for d in ds], dtype=torch.int64)} for ds in det_raw]


def reference_eval(gt_raw, det_raw, *, canvas=CANVAS, k=K, cat_ids=None) -> COCOeval:
    """COCOeval run directly on a COCO-format dict built here by hand (default params)."""
    images, anns, results = [], [], []
    for i, objs in enumerate(gt_raw):
        images.append({"id": i + 1, "width": canvas, "height": canvas})
        for o in objs:
            x1, y1, x2, y2 = np.float32(o["box"]).astype(np.float64).tolist()  # SceneSet's dtype
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": o["label"] + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(np.float32(o["area"])),
                         "iscrowd": int(o["difficult"])})
    for i, ds in enumerate(det_raw):
        for d in ds:
            # float32 like the predictions' tensors (the detectors' dtype)
            x1, y1, x2, y2 = np.float32(d["box"]).astype(np.float64).tolist()
            results.append({"image_id": i + 1, "category_id": d["label"] + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": float(np.float32(d["score"]))})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(k)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def random_case(seed: int = 0, n_images: int = 20):
    """~20 images, K imbalanced classes, all three size buckets, a few difficult objects, some
    images without GT, some without detections, noisy detections (jitter, wrong labels, FPs)."""
    rng = np.random.default_rng(seed)
    gt_raw, det_raw = [], []
    for i in range(n_images):
        objs = []
        n = 0 if i % 7 == 3 else int(rng.integers(1, 6))
        for _ in range(n):
            w, h = (float(rng.choice([14, 26, 45, 70, 130])) + rng.uniform(0, 8) for _ in range(2))
            x1, y1 = rng.uniform(0, CANVAS - w), rng.uniform(0, CANVAS - h)
            objs.append(obj([x1, y1, x1 + w, y1 + h], rng.choice(K, p=[.55, .25, .15, .05]),
                            area=w * h * rng.uniform(0.6, 1.0), occlusion=rng.uniform(0, 0.6),
                            difficult=rng.random() < 0.1))
        dets = []
        if i % 5 != 1:
            for o in objs:
                if rng.random() < 0.85:
                    s = 0.05 * (o["box"][2] - o["box"][0])
                    box = np.array(o["box"]) + rng.normal(0, s, 4)
                    box[2:] = np.maximum(box[2:], box[:2] + 2)
                    label = o["label"] if rng.random() < 0.85 else int(rng.integers(0, K))
                    dets.append(det(box, label, rng.uniform(0.3, 1)))
            for _ in range(int(rng.integers(0, 3))):
                x1, y1 = rng.uniform(0, CANVAS - 30, 2)
                w, h = rng.uniform(8, 30, 2)
                dets.append(det([x1, y1, x1 + w, y1 + h], rng.integers(0, K), rng.uniform(0, 0.7)))
        gt_raw.append(objs)
        det_raw.append(dets)
    return gt_raw, det_raw


def stat(v: float):
    return None if v == -1 else float(v)


# ------------------------------------------------------------------------------ vs pycocotools
@pytest.mark.parametrize("seed", [1, 2])
def test_summary_numbers_identical_to_cocoeval(seed):
    gt_raw, det_raw = random_case(seed)
    assert any(not o for o in gt_raw) and any(not d for d in det_raw)  # the edge images are there
    assert any(o["difficult"] for objs in gt_raw for o in objs)
    out = detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[2, 3])
    ref = reference_eval(gt_raw, det_raw)
    for index, key in STAT_KEYS.items():
        assert out[key] == stat(ref.stats[index]), key
    assert all(out[key] is not None and 0 < out[key] < 1 for key in STAT_KEYS.values())
    assert out["n_gt"] == sum(not o["difficult"] for objs in gt_raw for o in objs)
    assert out["n_difficult"] == sum(o["difficult"] for objs in gt_raw for o in objs)
    assert out["n_dets"] == sum(len(d) for d in det_raw)
    assert out["max_dets"] == [1, 10, 100]
    assert out["area_ranges"] == {"all": [0.0, 1e10], "small": [0.0, 1024.0],
                                  "medium": [1024.0, 9216.0], "large": [9216.0, 1e10]}
    json.dumps(out, allow_nan=False)
    assert set(out) <= set(METRIC_NOTES)


def test_per_class_ap_identical_to_cocoeval_per_category():
    gt_raw, det_raw = random_case(2)
    out = detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[2, 3])
    assert len(out["per_class_ap"]) == K
    for c in range(K):
        ref = reference_eval(gt_raw, det_raw, cat_ids=[c + 1])
        assert out["per_class_ap"][c] == stat(ref.stats[0]), c
    assert all(v is not None for v in out["per_class_ap"])
    assert out["rare_ap"] == pytest.approx(np.mean(out["per_class_ap"][2:]))
    assert detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[])["rare_ap"] is None


def test_coco_gt_and_dets_format():
    gt_raw = [[obj([10, 20, 30, 60], 2, area=123.0, difficult=True), obj([0, 0, 5, 5], 0)], []]
    gt = coco_gt(scene_set(gt_raw))
    assert [img["id"] for img in gt.dataset["images"]] == [1, 2]
    assert gt.dataset["images"][0]["width"] == CANVAS and gt.dataset["images"][0]["height"] == CANVAS
    a, b = gt.dataset["annotations"]
    assert a["bbox"] == [10.0, 20.0, 20.0, 40.0] and a["area"] == 123.0  # the target's area, not w*h
    assert a["category_id"] == 3 and a["iscrowd"] == 1 and b["iscrowd"] == 0 and b["id"] == 2
    assert gt.getCatIds() == [1, 2, 3, 4]
    dets = coco_dets(predictions([[det([1, 2, 4, 8], 1, 0.5)], []]))
    assert dets == [{"image_id": 1, "category_id": 2, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}]


# ------------------------------------------------------------------------------ boundary cases
def test_perfect_detections_give_ap_one():
    gt_raw, _ = random_case(3)
    gt_raw = [[dict(o, difficult=False) for o in objs] for objs in gt_raw]
    det_raw = [[det(o["box"], o["label"], 1.0) for o in objs] for objs in gt_raw]
    out = detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[3])
    for key in ("ap", "ap50", "ap75", "ar100"):
        assert out[key] == ONE, key
    present = {o["label"] for objs in gt_raw for o in objs}
    assert out["per_class_ap"] == [ONE if c in present else None for c in range(K)]
    assert all(r in (1.0, None) for r in out["recall_by_occlusion"].values())


def test_no_detections_give_ap_zero_and_no_gt_gives_none():
    gt_raw = [[obj([10, 10, 30, 30], 0), obj([40, 40, 140, 150], 1)], [], [obj([5, 5, 25, 35], 0)]]
    out = detection_metrics(scene_set(gt_raw), predictions([[], [], []]), minority=[1, 3])
    for key in ("ap", "ap50", "ap75", "ap_small", "ap_large", "ar100"):
        assert out[key] == 0.0, key
    assert out["ap_medium"] is None  # no GT object in the bucket: COCO's -1
    assert out["per_class_ap"] == [0.0, 0.0, None, None]
    assert out["rare_ap"] == 0.0 and out["n_dets"] == 0
    assert out["recall_by_occlusion"] == {"none": 0.0, "partial": None, "heavy": None}
    # no non-difficult GT at all: every AP is undefined (None), even with detections
    gt_raw = [[obj([10, 10, 30, 30], 0, difficult=True)], []]
    out = detection_metrics(scene_set(gt_raw), predictions([[det([1, 1, 9, 9], 0, 0.9)], []]),
                            minority=[0])
    assert all(out[key] is None for key in STAT_KEYS.values())
    assert out["per_class_ap"] == [None] * K and out["rare_ap"] is None and out["n_gt"] == 0
    json.dumps(out, allow_nan=False)


def test_difficult_object_is_neither_hit_nor_miss():
    # image 0: a difficult object beside two regular ones; an FP outranks one TP, so AP < 1
    gt_raw = [[obj([10, 10, 40, 40], 0), obj([60, 60, 100, 100], 0),
               obj([110, 10, 150, 50], 0, difficult=True)],
              [obj([20, 20, 60, 70], 0)]]
    base = [[det([10, 10, 40, 41], 0, 0.9), det([60, 61, 100, 100], 0, 0.5)],
            [det([100, 100, 120, 120], 0, 0.8), det([20, 20, 60, 70], 0, 0.4)]]
    on_difficult = [base[0] + [det([110, 10, 150, 50], 0, 0.95)], base[1]]
    ss = scene_set(gt_raw)
    without = detection_metrics(ss, predictions(base), minority=[0])
    with_hit = detection_metrics(ss, predictions(on_difficult), minority=[0])
    assert 0 < without["ap"] < 1 and without["n_gt"] == 3 and without["n_difficult"] == 1
    for key in ("ap", "ap50", "ap75", "ar100", "per_class_ap", "recall_by_occlusion"):
        assert with_hit[key] == without[key], key
    # the same object not difficult: missed it lowers AP, hit it raises AP (it counts now)
    plain = [[dict(o, difficult=False) for o in objs] for objs in gt_raw]
    assert detection_metrics(scene_set(plain), predictions(base), minority=[0])["ap"] < without["ap"]
    assert detection_metrics(scene_set(plain), predictions(on_difficult), minority=[0])["ar100"] == 1.0
    for dets in (base, on_difficult):  # and pycocotools agrees
        ap = detection_metrics(ss, predictions(dets), minority=[0])["ap"]
        assert ap == reference_eval(gt_raw, dets).stats[0]


class _Recording(COCOeval):
    instances: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Recording.instances.append(self)


def test_area_ranges_override_changes_the_buckets(monkeypatch):
    monkeypatch.setattr(M, "COCOeval", _Recording)
    _Recording.instances.clear()
    # a 10 x 10 object (area 100) and one whose target area (2000) is not its box's w*h (100)
    gt_raw = [[obj([5, 5, 15, 15], 0), obj([30, 30, 40, 40], 1, area=2000.0)]]
    det_raw = [[det([5, 5, 15, 15], 0, 0.9), det([30, 30, 40, 40], 1, 0.8)]]
    ss, preds = scene_set(gt_raw, canvas=64), predictions(det_raw)
    coco = detection_metrics(ss, preds, minority=[])
    assert (coco["ap_small"], coco["ap_medium"], coco["ap_large"]) == (ONE, ONE, None)
    # COCO's buckets scaled to a 64-px canvas (side x 64 / 640): small < 3.2^2, medium < 9.6^2
    scaled = {"small": [0.0, 3.2 ** 2], "medium": [3.2 ** 2, 9.6 ** 2], "large": [9.6 ** 2, 1e10]}
    out = detection_metrics(ss, preds, minority=[], area_ranges=scaled)
    assert (out["ap_small"], out["ap_medium"], out["ap_large"]) == (None, None, ONE)
    assert out["ap"] == ONE
    default_ev, scaled_ev = _Recording.instances
    assert np.allclose(default_ev.params.areaRng, [[0, 1e10], [0, 1024], [1024, 9216], [9216, 1e10]])
    assert scaled_ev.params.areaRng == [[0.0, 1e10], scaled["small"], scaled["medium"], scaled["large"]]
    assert scaled_ev.params.areaRngLbl == ["all", "small", "medium", "large"]
    assert scaled_ev.params.maxDets == [1, 10, 100]
    assert out["area_ranges"] == {"all": [0.0, 1e10], **scaled}
    with pytest.raises(ValueError, match="area_ranges"):
        detection_metrics(ss, preds, minority=[], area_ranges={"small": [0, 1]})


def test_recall_by_occlusion_hand_checked():
    gt_raw = [
        # image 0: none -> hit, partial (0.2) -> missed (no detection)
        [obj([10, 10, 50, 50], 0, occlusion=0.0), obj([70, 70, 110, 110], 1, occlusion=0.2)],
        # image 1: difficult object listed first (COCOeval sorts it last: gtIds order differs);
        # none (0.05) -> missed (IoU 0.4), heavy (0.5) -> hit at IoU ~0.6, heavy (0.3) -> hit
        [obj([0, 0, 30, 30], 1, occlusion=0.9, difficult=True),
         obj([40, 0, 80, 40], 1, occlusion=0.05),
         obj([100, 0, 140, 40], 1, occlusion=0.5),
         obj([0, 100, 40, 140], 1, occlusion=0.3)],
        # image 2: partial (0.1) -> hit (twice), partial (0.25) -> only a wrong-class detection
        [obj([10, 10, 40, 40], 2, occlusion=0.1), obj([80, 80, 120, 120], 0, occlusion=0.25)],
    ]
    det_raw = [
        [det([10, 10, 50, 50], 0, 0.9)],
        [det([0, 0, 30, 30], 1, 0.99),  # on the difficult object
         det([40, 0, 80, 16], 1, 0.9),  # IoU 16/40 = 0.4 with its object
         det([100, 0, 140, 24], 1, 0.8),  # IoU 24/40 = 0.6
         det([0, 100, 40, 140], 1, 0.7)],
        [det([10, 10, 40, 40], 2, 0.9), det([11, 10, 40, 40], 2, 0.8), det([80, 80, 120, 120], 3, 0.9)],
    ]
    out = detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[])
    assert out["recall_by_occlusion"] == {"none": 0.5, "partial": pytest.approx(1 / 3), "heavy": 1.0}
    assert out["n_by_occlusion"] == {"none": 2, "partial": 3, "heavy": 2}
    assert out["recall_occluded"] == pytest.approx(3 / 5)
    assert out["n_gt"] == 7 and out["n_difficult"] == 1


def test_max_dets_100_by_default():
    # one object; 100 better-scored false positives of its class push its detection to rank 101
    gt_raw = [[obj([100, 100, 140, 140], 0)]]
    fps = [det([x, y, x + 8, y + 8], 0, 0.99 - 0.001 * (10 * x // 9 + y // 9))
           for x in range(0, 90, 9) for y in range(0, 90, 9)]
    extra = [det([90 + i, 0, 98 + i, 8], 0, 0.01 + 0.001 * i) for i in range(49)]
    dets = fps + [det([100, 100, 140, 140], 0, 0.5)] + extra
    assert len(fps) == 100 and len(dets) == 150 and len({d["score"] for d in dets}) == 150
    ss, preds = scene_set(gt_raw), predictions([dets])
    out = detection_metrics(ss, preds, minority=[0])
    assert out["max_dets"] == [1, 10, 100] and out["n_dets"] == 150
    assert out["ap"] == 0.0 and out["ar100"] == 0.0 and out["recall_by_occlusion"]["none"] == 0.0
    ref = reference_eval(gt_raw, [dets])
    assert ref.params.maxDets == [1, 10, 100] and out["ap"] == ref.stats[0] and out["ar100"] == ref.stats[8]
    more = detection_metrics(ss, preds, minority=[0], max_dets=150)
    assert more["max_dets"] == [1, 10, 150]
    assert more["ar100"] == 1.0 and more["recall_by_occlusion"]["none"] == 1.0
    assert more["ap"] == pytest.approx(1 / 101)  # precision 1/101 at every recall threshold


def test_invalid_inputs_raise():
    ss = scene_set([[obj([1, 1, 9, 9], 0)]])
    with pytest.raises(ValueError, match="predictions for"):
        detection_metrics(ss, predictions([[], []]), minority=[])
    with pytest.raises(ValueError, match="labels outside"):
        detection_metrics(ss, predictions([[det([1, 1, 9, 9], K, 0.5)]]), minority=[])
    with pytest.raises(ValueError, match="minority"):
        detection_metrics(ss, predictions([[]]), minority=[K])
    with pytest.raises(ValueError, match="max_dets"):
        detection_metrics(ss, predictions([[]]), minority=[], max_dets=5)


def test_resized_real_set_scales_detection_areas_into_the_gt_units():
    """A set resized 4x down keeps GT areas in original pixels (area_scale 16): a false positive
    that is large in original pixels must stay out of the small bucket (review finding)."""
    ranges = {"all": [0, 1e10], "small": [0, 1024], "medium": [1024, 9216], "large": [9216, 1e10]}
    box = [2.0, 2.0, 6.0, 6.0]  # 4x4 resized = 16x16 = 256 px^2 originally: small
    target = make_target([box], [0], (32, 32), area=[256.0])
    test = SceneSet([torch.zeros(1, 32, 32, dtype=torch.uint8)], [target], ["a"], area_scale=[16.0])
    hit = {"boxes": torch.tensor([box]), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}
    fp = {"boxes": torch.tensor([box, [10.0, 10.0, 35.0, 35.0]]), "scores": torch.tensor([0.5, 0.9]),
          "labels": torch.tensor([0, 0])}  # the false positive: 25x25 resized = 100x100 originally
    alone = M.detection_metrics(test, [hit], minority=[], area_ranges=ranges)
    with_fp = M.detection_metrics(test, [fp], minority=[], area_ranges=ranges)
    assert alone["ap_small"] == pytest.approx(1.0, abs=1e-9)
    assert with_fp["ap_small"] == pytest.approx(1.0, abs=1e-9)  # the large FP is ignored in "small"
    assert with_fp["ap"] < 1.0  # ... but counts in "all"
    unscaled = SceneSet([torch.zeros(1, 32, 32, dtype=torch.uint8)], [target], ["a"])
    assert M.detection_metrics(unscaled, [fp], minority=[], area_ranges=ranges)["ap_small"] < 1.0


# --------------------------------------------------------------------- LVIS groups, VOC07
@pytest.mark.parametrize("seed", [1, 2])
def test_lvis_group_aps_equal_cocoeval_restricted_to_the_group(seed):
    """AP_r / AP_c / AP_f: COCOeval with params.catIds = the group's categories reports the same
    stats[0] (LVIS's AP_r is the mean per-category AP over the rare categories)."""
    gt_raw, det_raw = random_case(seed)
    groups = {"rare": [3], "common": [1, 2], "frequent": [0]}
    got = detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[], groups=groups)
    for key, name in (("ap_r", "rare"), ("ap_c", "common"), ("ap_f", "frequent")):
        ref = reference_eval(gt_raw, det_raw, cat_ids=[c + 1 for c in groups[name]])
        assert got[key] == pytest.approx(stat(ref.stats[0]), abs=1e-12), key
    empty = detection_metrics(scene_set(gt_raw), predictions(det_raw), minority=[],
                              groups={"rare": [], "common": [], "frequent": [0, 1, 2, 3]})
    assert empty["ap_r"] is None and empty["ap_c"] is None and empty["ap_f"] == pytest.approx(got["ap"])


def _voc(gt_raw, det_raw):
    from imbench.tasks.detection.voc_eval import voc07_metrics

    return voc07_metrics(scene_set(gt_raw), predictions(det_raw))


def test_voc07_eleven_point_ap_hand_checked():
    """Two objects; detections by score: hit, miss, hit -> precision 1, 1/2, 2/3 at recall 1/2,
    1/2, 1: the 11-point AP is (6 x 1 + 5 x 2/3) / 11."""
    a, b = obj([10, 10, 40, 40], 0), obj([80, 80, 120, 120], 0)
    dets = [det([10, 10, 40, 40], 0, 0.9), det([50, 10, 70, 30], 0, 0.8), det([81, 81, 120, 120], 0, 0.7)]
    got = _voc([[a, b]], [dets])
    assert got["voc07_ap50_per_class"][0] == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert got["voc07_ap50_per_class"][1:] == [None] * (K - 1)
    assert got["voc07_map50"] == pytest.approx((6 + 5 * 2 / 3) / 11)
    perfect = _voc([[a, b]], [[det(a["box"], 0, 0.9), det(b["box"], 0, 0.8)]])
    assert perfect["voc07_map50"] == pytest.approx(1.0)


def test_voc07_difficult_rule_differs_from_coco_crowd():
    """A small detection inside a large difficult object: COCO's crowd IoU (over the detection's
    area) is 1, so COCO ignores it; VOC's IoU is small, so VOC counts a false positive. A detection
    on the difficult object itself (IoU >= 0.5) is ignored by both."""
    hit = obj([10, 10, 40, 40], 0)
    hard = obj([60, 60, 150, 150], 0, difficult=True)
    inside = det([100, 100, 110, 110], 0, 0.95)  # ranked above the hit
    dets = [inside, det([10, 10, 40, 40], 0, 0.9)]
    coco = detection_metrics(scene_set([[hit, hard]]), predictions([dets]), minority=[])
    assert coco["ap50"] == ONE
    voc = _voc([[hit, hard]], [dets])
    assert voc["voc07_map50"] == pytest.approx(0.5)  # precision 1/2 at recall 1
    on_hard = [det([62, 62, 150, 150], 0, 0.95), det([10, 10, 40, 40], 0, 0.9)]
    assert _voc([[hit, hard]], [on_hard])["voc07_map50"] == pytest.approx(1.0)
