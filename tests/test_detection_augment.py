"""Detection augmentations: random-erasing on scenes and Simple Copy-Paste."""
from __future__ import annotations

import time

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from imbench.baselines.copy_paste import (MIN_PIXELS, CopyPaste, box_pixels, jitter_scene, paste_objects,
                                          tight_boxes)
from imbench.baselines.random_erasing import RandomErasing
from imbench.benchmarks.contract import UsageError
from imbench.data_recipes.sceneset import make_target
from imbench.testing import check_method, run_smoke_cell, tiny_scene_context, tiny_sceneset

S = 32


def _batch(train, idx=range(8)):
    return [train.images[i].float() / 255.0 for i in idx], [train.targets[i] for i in idx]


def _scene(objects, size=S, fill=0.1, seed=0):
    """An image with solid rectangles ``(x0, y0, x1, y1, label, value)`` (later ones on top),
    the exact visible masks and tight boxes of what remains of each."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, size, size, generator=g) * fill
    full = []
    for x0, y0, x1, y1, _, v in objects:
        img[:, y0:y1, x0:x1] = v
        m = torch.zeros(size, size, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        full.append(m)
    visible = []
    for k, m in enumerate(full):
        above = torch.stack(full[k + 1:]).any(0) if k + 1 < len(full) else torch.zeros_like(m)
        visible.append(m & ~above)
    masks = torch.stack(visible).to(torch.uint8)
    boxes = tight_boxes(masks.bool())
    return img, make_target(boxes, [o[4] for o in objects], (size, size), masks=masks)


def _assert_consistent(img, t, with_masks=True):
    H, W = img.shape[-2:]
    b = t["boxes"].as_subclass(torch.Tensor)
    n = len(t["labels"])
    assert tuple(t["boxes"].canvas_size) == (H, W)
    assert all(len(t[k]) == n for k in ("area", "occlusion", "difficult", "synthetic"))
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert (b >= 0).all() and (b[:, 2] <= W).all() and (b[:, 3] <= H).all()
    assert ((t["occlusion"] >= 0) & (t["occlusion"] <= 1)).all()
    if with_masks:
        masks = t["masks"].as_subclass(torch.Tensor).bool()
        assert masks.shape == (n, H, W) and (masks.flatten(1).sum(1) >= MIN_PIXELS).all()
        assert torch.equal(b, tight_boxes(masks))  # every box is the tight box of its mask


# ------------------------------------------------------------------ copy-paste

def test_paste_copies_source_pixels_and_cuts_covered_objects():
    # destination: a small object fully under the paste, one half under it, one clear of it
    dst_img, dst_t = _scene([(2, 2, 6, 6, 0, 0.5), (14, 2, 22, 10, 1, 0.6), (24, 24, 30, 30, 2, 0.7)])
    dst_t["occlusion"] = torch.tensor([0.0, 0.2, 0.0])
    src_img, src_t = _scene([(0, 0, 18, 12, 1, 0.9), (8, 20, 12, 24, 2, 0.8)], seed=1)
    src_t["occlusion"] = torch.tensor([0.0, 0.3])
    img, t, stats = paste_objects(dst_img, dst_t, src_img, src_t, torch.tensor([True, False]))
    _assert_consistent(img, t)
    assert stats == {"pasted": 1, "dropped": 1}
    # the fully covered object 0 is gone; 1 keeps its right half (x 18..22); 2 is untouched; then the paste
    assert t["labels"].tolist() == [1, 2, 1] and t["synthetic"].tolist() == [False, False, True]
    assert t["boxes"].as_subclass(torch.Tensor).tolist() == [[18, 2, 22, 10], [24, 24, 30, 30], [0, 0, 18, 12]]
    assert torch.allclose(t["occlusion"], torch.tensor([1 - 0.8 * 0.5, 0.0, 0.0]))
    assert torch.allclose(t["area"], torch.tensor([4.0 * 8, 36, 18 * 12]))  # box areas (the set's convention)
    pasted = src_t["masks"][0].bool()
    assert torch.equal(img[:, pasted], src_img[:, pasted])
    assert torch.equal(img[:, ~pasted], dst_img[:, ~pasted])
    assert torch.equal(t["masks"][2].bool(), pasted)


def test_paste_with_scale_flip_and_offset_matches_torchvision_geometry():
    dst_img, dst_t = _scene([(20, 20, 28, 30, 0, 0.5)])
    src_img, src_t = _scene([(4, 4, 12, 16, 1, 0.9), (14, 2, 20, 8, 2, 0.7)], seed=2)
    src_img = src_img + torch.linspace(0, 0.05, S)  # texture, so a flip or shift would show
    scale, offset = 1.5, (-6, -10)
    img, t, _ = paste_objects(dst_img, dst_t, src_img, src_t, [0, 1], scale=scale, flip=True, offset=offset)
    _assert_consistent(img, t)
    big = TF.resize(TF.horizontal_flip(src_img), [48, 48], antialias=True).clamp(0, 1)
    big_masks = TF.resize(tv_tensors.Mask(TF.horizontal_flip(src_t["masks"])), [48, 48])
    placed, placed_masks = big[:, 6:6 + S, 10:10 + S], big_masks[:, 6:6 + S, 10:10 + S]
    on = placed_masks.bool().any(0)
    assert torch.equal(img[:, on], placed[:, on]) and torch.equal(img[:, ~on], dst_img[:, ~on])
    assert torch.equal(t["masks"][-2:], placed_masks)
    assert t["synthetic"].tolist() == [False, True, True]


def test_paste_without_masks_pastes_box_rectangles():
    dst_img, dst_t = _scene([(2, 2, 6, 6, 0, 0.5), (10, 2, 20, 12, 1, 0.6)])
    src_img, src_t = _scene([(0, 0, 8, 8, 1, 0.9), (8, 0, 16, 8, 2, 0.8)], seed=1)
    for t in (dst_t, src_t):
        del t["masks"]
    img, t, stats = paste_objects(dst_img, dst_t, src_img, src_t, [0, 1], scale=0.75, offset=(1, 2))
    _assert_consistent(img, t, with_masks=False)
    moved = TF.crop(TF.resize(src_t["boxes"], [24, 24]), -1, -2, S, S).as_subclass(torch.Tensor)
    b = t["boxes"].as_subclass(torch.Tensor)
    assert torch.equal(b[-2:], moved) and torch.equal(b[0], torch.tensor([10.0, 2, 20, 12]))
    assert stats["dropped"] == 1 and t["labels"].tolist() == [1, 1, 2]  # object 0 (2..6) fully covered
    on = box_pixels(moved, (S, S)).any(0)
    assert torch.equal(img[:, ~on], dst_img[:, ~on])
    placed = torch.zeros(1, S, S)
    placed[:, 1:25, 2:26] = TF.resize(src_img, [24, 24], antialias=True).clamp(0, 1)
    assert torch.equal(img[:, on], placed[:, on])
    covered = box_pixels(dst_t["boxes"][1:], (S, S))[0] & on
    assert torch.isclose(t["occlusion"][0], covered.sum() / torch.tensor(100.0))


def test_augment_counts_synthetic_objects_and_keeps_images():
    train = tiny_sceneset()
    ctx = tiny_scene_context(train)
    images, targets = _batch(train)
    out_i, out_t = CopyPaste(paste_p=1.0, scale_min=1.0, scale_max=1.0).augment((images, targets), ctx)
    pasted = sum(int(t["synthetic"].sum()) for t in out_t)
    kept = sum(len(t["labels"]) - int(t["synthetic"].sum()) for t in out_t)
    assert pasted > 0 and ctx.record["copy_paste"]["pasted"] == pasted
    assert kept == sum(len(t["labels"]) for t in targets) - ctx.record["copy_paste"]["dropped"]
    for a, b, t in zip(out_i, images, out_t):
        assert a.shape == b.shape and a.dtype == b.dtype and a.min() >= 0 and a.max() <= 1
        _assert_consistent(a, t)
    _, none = CopyPaste(paste_p=0.0, jitter_destination=False).augment((images, targets), ctx)
    assert all(torch.equal(t["boxes"], u["boxes"]) and not t["synthetic"].any() for t, u in zip(none, targets))
    rare = tiny_scene_context(train)
    _, only = CopyPaste(paste_p=1.0, rare_only=True).augment((images, targets), rare)
    labels = torch.cat([t["labels"][t["synthetic"]] for t in only])
    assert len(labels) > 0 and set(labels.tolist()) <= set(rare.minority)


def test_jitter_scene_matches_torchvision_geometry_and_drops_what_leaves_the_canvas():
    img, t = _scene([(2, 2, 10, 8, 0, 0.5), (20, 18, 30, 30, 1, 0.7)])
    img = img + torch.linspace(0, 0.05, S)
    same_img, same_t = jitter_scene(img, t, 1.0, False, (0, 0))
    assert torch.equal(same_img, img) and torch.equal(same_t["boxes"], t["boxes"])
    assert torch.equal(same_t["masks"], t["masks"]) and torch.equal(same_t["area"], t["area"])
    # x2, shifted so that the first object leaves the canvas
    out_img, out_t = jitter_scene(img, t, 2.0, False, (-30, -30))
    _assert_consistent(out_img, out_t)
    big = TF.resize(img, [64, 64], antialias=True).clamp(0, 1)
    assert torch.equal(out_img, big[:, 30:30 + S, 30:30 + S])
    big_masks = TF.resize(tv_tensors.Mask(t["masks"]), [64, 64])[:, 30:30 + S, 30:30 + S]
    assert out_t["labels"].tolist() == [1] and torch.equal(out_t["masks"][0], big_masks[1])
    assert out_t["boxes"].as_subclass(torch.Tensor).tolist() == [[10.0, 6.0, 30.0, 30.0]]
    assert torch.equal(out_t["occlusion"], t["occlusion"][1:])  # truncation is not occlusion
    # a shrink pads with zeros
    small_img, _ = jitter_scene(img, t, 0.5, False, (16, 16))
    assert (small_img[:, :16] == 0).all() and (small_img[:, :, :16] == 0).all()


def test_copy_paste_jitters_the_destination_too():
    train = tiny_sceneset()
    images, targets = _batch(train)
    ctx = tiny_scene_context(train)
    out_i, out_t = CopyPaste(paste_p=0.0).augment((images, targets), ctx)  # nothing pasted: only the jitter
    assert sum(not torch.equal(a, b) for a, b in zip(out_i, images)) >= len(images) // 2
    for a, t in zip(out_i, out_t):
        _assert_consistent(a, t)
        assert not t["synthetic"].any()
    still_i, _ = CopyPaste(paste_p=0.0, jitter_destination=False).augment((images, targets), ctx)
    assert all(torch.equal(a, b) for a, b in zip(still_i, images))


def test_paste_drops_only_fully_occluded_objects():
    # a 20x10 destination object (200 px); the paste covers all its columns but the last, and
    # part of that one: 6 pixels (3 %) or 2 pixels (1 %) stay visible
    for covered_rows, visible in ((4, 6), (8, 2)):
        dst_img, dst_t = _scene([(4, 4, 24, 14, 0, 0.5)])
        src_img, src_t = _scene([(0, 0, 23, 16, 1, 0.9), (23, 4, 24, 4 + covered_rows, 2, 0.8)], seed=1)
        _, paper, _ = paste_objects(dst_img, dst_t, src_img, src_t, [0, 1])
        _, v1, _ = paste_objects(dst_img, dst_t, src_img, src_t, [0, 1], min_visible=0.05)
        assert (0 in paper["labels"].tolist()) == (visible >= MIN_PIXELS)  # kept unless (nearly) fully hidden
        assert 0 not in v1["labels"].tolist()  # version 1: dropped below 5 % visible
        if visible >= MIN_PIXELS:
            assert paper["boxes"].as_subclass(torch.Tensor)[0].tolist() == [23.0, 4 + covered_rows, 24.0, 14.0]


def test_copy_paste_is_deterministic_for_a_seed():
    train = tiny_sceneset()

    def run(seed):
        method, ctx = CopyPaste(), tiny_scene_context(train, seed=seed)
        method.on_epoch(0, ctx)
        outs = [method.augment(_batch(train, idx), ctx) for idx in (range(6), range(2, 8))]
        return [(i, t["boxes"].as_subclass(torch.Tensor), t["labels"]) for o in outs for i, t in zip(*o)]

    def same(p, q):
        return all(x.shape == y.shape and torch.equal(x, y) for u, v in zip(p, q) for x, y in zip(u, v))

    a = run(0)
    assert same(a, run(0)) and not same(a, run(1))


def test_copy_paste_rejects_bad_parameters():
    for bad in ({"paste_p": 1.5}, {"scale_min": 0.0}, {"scale_min": 2.0, "scale_max": 1.0}, {"min_visible": 1.0}):
        with pytest.raises(UsageError):
            CopyPaste(**bad)


# ------------------------------------------------------------------ random erasing on scenes

def test_random_erasing_on_scenes_changes_only_one_rectangle():
    train = tiny_sceneset()
    images, targets = _batch(train)
    images = [i * 0.9 + 0.1 for i in images]  # no zero pixel before erasing
    ctx = tiny_scene_context(train)
    method = RandomErasing(p=1.0, value=0)
    method.on_epoch(0, ctx)
    out_i, out_t = method.augment(([i.clone() for i in images], targets), ctx)
    for a, b, t, u in zip(out_i, images, out_t, targets):
        assert t is u  # boxes, masks, occlusion: passed through as torchvision does
        zero = a[0] == 0
        rows, cols = zero.any(1).nonzero()[:, 0], zero.any(0).nonzero()[:, 0]
        assert zero.any() and zero.sum() == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)
        assert torch.equal(a[:, ~zero], b[:, ~zero])
    again = RandomErasing(p=1.0, value=0)
    again.on_epoch(0, tiny_scene_context(train))
    assert all(torch.equal(x, y) for x, y in zip(out_i, again.augment(([i.clone() for i in images], targets), ctx)[0]))


# ------------------------------------------------------------------ contract and smoke cells

@pytest.mark.parametrize("cls", [CopyPaste, RandomErasing])
def test_check_method_on_detection(cls):
    check_method(cls, track="detection")


@pytest.mark.parametrize("name", ["copy-paste", "random-erasing"])
def test_smoke_cell_on_detection(name, tmp_path):
    start = time.perf_counter()
    rec = run_smoke_cell(name, tmp_path, track="detection", recipe_params={"n_max": 60})
    assert rec["status"] == "ok", rec.get("error")
    print(f"{name} smoke cell: {time.perf_counter() - start:.1f}s")
