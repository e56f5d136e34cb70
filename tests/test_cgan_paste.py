"""cgan-paste (``gans/cgan_paste.py``, ``gans/object_crops.py``): object crops, the conditional GAN
reused from cgan, pasting with consistent targets, sample quality, the generator cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from imbench.benchmarks.contract import Context
from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.plugins import METHODS
from imbench.data_recipes.scenes import load_scenes
from imbench.data_recipes.scenes.recipes import apply_scene_recipe, resolve_scene_recipe
from imbench.data_recipes.sceneset import SceneSet, make_target
from imbench.gans.cgan import CGAN
from imbench.gans.cgan_paste import Canvas, CganPaste
from imbench.gans.object_crops import object_crops
from imbench.testing import check_method, run_smoke_cell, tiny_scene_context, tiny_sceneset

SMOKE_GAN = {"steps": 30, "batch_size": 32, "lr": 2.0e-4, "feature_epochs": 3}


def _mask_box(mask: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _scene(masks: bool = True) -> SceneSet:
    """One 1x20x20 image: class 0 (box x 2..10, y 3..11, mask = its left half, 200 on the mask,
    10 elsewhere), a difficult class-0 object, class 1 visible and heavily occluded, class 2
    only heavily occluded."""
    img = torch.full((1, 20, 20), 5, dtype=torch.uint8)
    img[0, 3:11, 2:10] = 10
    img[0, 3:11, 2:6] = 200
    boxes = [[2, 3, 10, 11], [12, 0, 16, 4], [12, 12, 18, 18], [0, 14, 4, 18], [14, 5, 18, 9]]
    m = torch.zeros(5, 20, 20, dtype=torch.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        m[k, y0:y1, x0:x1] = 1
    m[0, 3:11, 6:10] = 0
    target = make_target(boxes, [0, 0, 1, 1, 2], (20, 20), occlusion=[0, 0, 0, 0.5, 0.5],
                         difficult=[False, True, False, False, False], masks=m if masks else None)
    return SceneSet([img], [target], ["a", "b", "c"])


def test_crops_shape_labels_and_mask_alignment():
    crops = object_crops(_scene(), 16)
    # the difficult object and the heavily occluded class-1 object are left out; class 2 has no
    # visible-enough object, so its heavily occluded one is kept
    assert crops.where.tolist() == [[0, 0], [0, 2], [0, 4]]
    assert crops.images.labels.tolist() == [0, 1, 2]
    assert crops.images.images.shape == (3, 2, 16, 16) and crops.images.images.dtype == torch.uint8
    assert crops.sizes.tolist() == [[8.0, 8.0], [6.0, 6.0], [4.0, 4.0]]
    img, mask = crops.images.images[0, 0], crops.images.images[0, 1]
    # the mask channel is the resized mask thresholded at 0.5, aligned with the image channel
    region = _scene().images[0][:, 3:11, 2:10].float()
    ref_img = TF.resize(region, [16, 16], antialias=True).round().clamp(0, 255)
    ref_mask = TF.resize(torch.zeros(1, 8, 8).index_fill_(2, torch.arange(4), 1.0), [16, 16], antialias=True)
    assert torch.equal(img.float(), ref_img[0])
    assert torch.equal(mask, (ref_mask[0] >= 0.5).to(torch.uint8) * 255)
    assert (mask[:, :8] == 255).all() and (mask[:, 8:] == 0).all()
    assert img[mask > 0].float().min() > 100 > img[mask == 0].float().max()


def test_crops_without_masks_use_the_full_box():
    crops = object_crops(_scene(masks=False), 12)
    assert crops.images.images.shape == (3, 2, 12, 12)
    assert (crops.images.images[:, 1] == 255).all()


def test_canvas_drops_fully_covered_objects_and_updates_partly_covered_ones():
    scene = _scene()
    canvas = Canvas(scene.images[0], scene.targets[0])
    # a 12 x 12 patch at the top-left corner hides all of object 0 (x 2..5, y 3..10)
    pixels = torch.full((1, 12, 12), 99, dtype=torch.uint8)
    assert canvas.paste(pixels, torch.ones(12, 12, dtype=torch.bool), 1, max_cover=1.0, rng=_PinnedRng(0, 0))
    # a 6 x 3 patch at (y 12, x 12) hides the left half of object 2 (x 12..17, y 12..17)
    half = torch.ones(6, 3, dtype=torch.bool)
    assert canvas.paste(torch.full((1, 6, 3), 77, dtype=torch.uint8), half, 2, max_cover=1.0, rng=_PinnedRng(12, 12))
    t = canvas.target()
    # objects 1..4 of the scene, then the two pasted ones; object 0 is gone
    assert t["labels"].tolist() == [0, 1, 1, 2, 1, 2]
    assert t["synthetic"].tolist() == [False, False, False, False, True, True]
    boxes = t["boxes"].as_subclass(torch.Tensor)
    for k in range(len(boxes)):
        assert boxes[k].tolist() == _mask_box(t["masks"][k].bool()), k
    assert boxes[1].tolist() == [15.0, 12.0, 18.0, 18.0]  # what is left of object 2
    assert float(t["area"][1]) == 18.0 and float(t["occlusion"][1]) == pytest.approx(0.5)
    # untouched objects keep their fields (the difficult one, the two occluded ones)
    for k, j in ((0, 1), (2, 3), (3, 4)):
        for key in ("boxes", "area", "occlusion", "difficult"):
            assert torch.equal(t[key][k].as_subclass(torch.Tensor), scene.targets[0][key][j].as_subclass(torch.Tensor))
    assert boxes[4].tolist() == [0.0, 0.0, 12.0, 12.0] and float(t["area"][4]) == 144 and float(t["occlusion"][4]) == 0
    assert boxes[5].tolist() == [12.0, 12.0, 15.0, 18.0] and float(t["area"][5]) == 18
    assert (canvas.image[0, :12, :12] == 99).all() and (canvas.image[0, 12:18, 12:15] == 77).all()


def test_canvas_without_masks_and_with_non_box_areas():
    """Sources without masks (VOC / COCO): boxes stand in for masks and targets stay mask-less;
    an area that is not the box area (COCO's mask area) scales with the visible pixels kept."""
    scene = _scene(masks=False)
    target = dict(scene.targets[0])
    target["area"] = torch.tensor([32.0, 16.0, 30.0, 16.0, 16.0])
    canvas = Canvas(scene.images[0], target)
    half = torch.ones(6, 3, dtype=torch.bool)
    assert canvas.paste(torch.full((1, 6, 3), 77, dtype=torch.uint8), half, 2, max_cover=0.5, rng=_PinnedRng(12, 12))
    t = canvas.target()
    assert "masks" not in t and t["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    assert t["boxes"].as_subclass(torch.Tensor)[2].tolist() == [15.0, 12.0, 18.0, 18.0]
    assert float(t["area"][2]) == pytest.approx(15.0) and float(t["occlusion"][2]) == pytest.approx(0.5)
    # max_cover: a paste hiding more than that share of an object finds no place
    assert not canvas.paste(torch.full((1, 6, 3), 7, dtype=torch.uint8), half, 2, max_cover=0.5,
                            rng=_PinnedRng(12, 15))


class _PinnedRng:
    """A stand-in for the paste position generator: always (y, x)."""

    def __init__(self, y: int, x: int):
        self.values = [y, x]

    def integers(self, lo, hi):
        v = self.values.pop(0)
        self.values.append(v)
        return v


@pytest.fixture(scope="module")
def digit_cell():
    """digit-scenes rare-class (n_max 60, IR 10): ``run`` prepares it with the smoke GAN budget
    (``quality``: with the source, so sample quality is measured)."""
    source = load_scenes("digit-scenes")
    imb = apply_scene_recipe(source, "rare-class", resolve_scene_recipe("rare-class", {"n_max": 60, "ir": 10.0}), 0)
    train = imb.train

    def run(seed=0, artifacts=None, cache=None, quality=False, **params):
        ctx = Context(track="detection", class_names=list(train.class_names), instance_counts=train.instance_counts(),
                      image_counts=train.image_counts(), minority=list(imb.minority), seed=seed,
                      budget={"gan": dict(SMOKE_GAN)}, source=source if quality else None,
                      data_key={"recipe": "rare-class", "seed": seed},
                      artifacts_dir=artifacts, artifact_stem="cell", cache_dir=cache)
        return CganPaste(**params).prepare(train, ctx), ctx

    return train, imb.minority, run


def test_prepare_fills_minority_classes_with_consistent_targets(digit_cell, tmp_path):
    train, minority, run = digit_cell
    out, ctx = run(artifacts=tmp_path, quality=True)
    before, after = np.array(train.instance_counts()), np.array(out.instance_counts())
    assert after[minority].tolist() == [before.max()] * len(minority)  # exactly the largest count
    others = [c for c in range(train.num_classes) if c not in minority]
    assert (after[others] >= before[others]).all()  # host copies bring their own objects along
    assert ctx.record["synthetic_per_class"] == [int(before.max() - before[c]) if c in minority else 0
                                                 for c in range(train.num_classes)]
    n = len(train)
    assert all(a is b for a, b in zip(out.images[:n], train.images)) and not out.synthetic[:n].any()
    assert all(a is b for a, b in zip(out.targets[:n], train.targets))
    assert out.synthetic[n:].all() and len(out) > n
    ids = {i: k for k, i in enumerate(train.ids)}
    real_sizes = object_crops(train, 12).sizes, object_crops(train, 12).images.labels
    largest = {c: real_sizes[0][real_sizes[1] == c].amax(0).tolist() for c in minority}
    for img, t, name in zip(out.images[n:], out.targets[n:], out.ids[n:]):
        host = ids[name.rsplit("-cgan-paste", 1)[0]]
        h_img, h_t = train.images[host], train.targets[host]
        boxes, masks, H, W = t["boxes"].as_subclass(torch.Tensor), t["masks"].bool(), *img.shape[1:]
        syn = t["synthetic"]
        assert syn.any() and set(t["labels"][syn].tolist()) <= set(minority)
        assert not set(h_t["labels"].tolist()) & set(minority)  # hosts hold no filled class
        for box, c in zip(boxes[syn].tolist(), t["labels"][syn].tolist()):  # at most a real box of the class
            assert box[3] - box[1] <= largest[c][0] and box[2] - box[0] <= largest[c][1]
        assert (boxes >= 0).all() and (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all()
        for k in range(len(boxes)):  # every box is the tight box of its visible mask (digit-scenes' rule)
            assert boxes[k].tolist() == _mask_box(masks[k]), (name, k)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert torch.equal(t["area"][syn], area[syn]) and not t["difficult"][syn].any()
        pasted = masks[syn].any(0)
        # the host's objects: all kept (max_cover 0.1), masks = host masks minus the pasted pixels
        real = ~syn
        assert torch.equal(t["labels"][real], h_t["labels"])
        assert torch.equal(masks[real], h_t["masks"].bool() & ~pasted)
        vis = masks[real].sum((1, 2)).double()
        full = h_t["masks"].sum((1, 2)).double() / (1 - h_t["occlusion"].double())
        assert torch.allclose(t["occlusion"][real].double(), 1 - vis / full, atol=1e-5)
        assert (vis >= 0.9 ** 3 * h_t["masks"].sum((1, 2)) - 1e-6).all()  # <= 3 pastes, each hides <= 10 %
        assert torch.equal(img[:, ~pasted], h_img[:, ~pasted])  # pixels change only under pasted masks
    assert ctx.record["gan_paste"]["reached"] == after.tolist()
    # sample quality of the generated crops, as the classification GANs record it
    m = ctx.metrics
    assert math.isfinite(m["fid_mean"]) and math.isfinite(m["kid_mean"]) and 0 <= m["gan_test_mean"] <= 1
    for c in range(train.num_classes):
        assert (m["fid_per_class"][c] is not None) == (c in minority)
    assert (tmp_path / "cell.png").stat().st_size > 0 and ctx.record["samples_png"].endswith("cell.png")


def test_deterministic_for_a_seed_and_the_generator_cache(digit_cell, tmp_path):
    _, _, run = digit_cell
    a, ctx_a = run(seed=3)
    b, _ = run(seed=3)
    assert a.fingerprint() == b.fingerprint() and ctx_a.record["generator_cache"] == "off"
    assert run(seed=4)[0].fingerprint() != a.fingerprint()
    first, ctx1 = run(seed=3, cache=tmp_path)
    _, ctx2 = run(seed=3, cache=tmp_path, max_cover=0.2)  # a pasting parameter: same generator
    _, ctx3 = run(seed=3, cache=tmp_path, crop_size=8)
    assert (ctx1.record["generator_cache"], ctx2.record["generator_cache"], ctx3.record["generator_cache"]) == \
        ("miss", "hit", "miss")
    assert first.fingerprint() == a.fingerprint()
    assert run(seed=3, cache=tmp_path)[0].fingerprint() == a.fingerprint()


def test_registered_and_bad_parameters():
    assert METHODS.get("cgan-paste") is CganPaste and issubclass(CganPaste, CGAN)
    assert CganPaste.family == "gan" and CganPaste.tracks == ("detection",)
    assert CganPaste().params["blend"] == "full" and CganPaste(blend="0.50").params["blend"] == "0.5"
    for bad in ({"crop_size": 9}, {"max_cover": 1.5}, {"max_occlusion": 0.0}, {"per_image": 0}, {"blend": "2"}):
        with pytest.raises(UsageError):
            CganPaste(**bad)


def test_blend_fills_a_fraction_and_no_source_skips_quality():
    train = tiny_sceneset(counts=(12, 4, 2))
    ctx = tiny_scene_context(train)
    out = CganPaste(blend="0.5").prepare(train, ctx)
    assert out.instance_counts()[1:] == [4 + 4, 2 + 5]  # int(0.5 * deficit)
    assert "fid_mean" not in ctx.metrics and ctx.record["generator_cache"] == "off"


def test_check_method():
    check_method(CganPaste)


def test_smoke_cell(tmp_path):
    rec = run_smoke_cell("cgan-paste", tmp_path, track="detection", recipe_params={"n_max": 60})
    assert rec["status"] == "ok", rec.get("error")
    counts = rec["class_counts"]
    assert all(counts["trained_on"][c] == max(counts["recipe"]) for c in counts["minority"])
    assert math.isfinite(rec["metrics"]["fid_mean"]) and math.isfinite(rec["metrics"]["kid_mean"])
    assert list((tmp_path / "samples").glob("*.png"))
