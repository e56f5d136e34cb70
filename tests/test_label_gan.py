"""label-gan (``gans/label_gan.py``, ``gans/pix2pix.py``): rebalanced label maps with real rare-class
shapes, rendered by a pix2pix generator; targets, determinism, the generator cache, sample quality."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from imbench.benchmarks.contract import Context
from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.imageset import Source
from imbench.data_recipes.segset import SegSet
from imbench.gans.label_gan import (LabelGan, class_regions, filled_classes, region_crops, render, targets,
                                    window)
from imbench.gans.pix2pix import MultiScaleDiscriminator, UNetGenerator, one_hot
from imbench.tasks.segmentation.models import build_segmenter
from imbench.tasks.segmentation.train import fit
from imbench.testing import check_method

GAN = {"steps": 4, "batch_size": 4, "lr": 2.0e-3, "feature_epochs": 1}
VOID = 255


def tiny_segset(n: int = 16, size: int = 16, channels: int = 1, rare_every: int = 4, seed: int = 0,
                sizes=None) -> SegSet:
    """Background 0 (dark noise); class 1: a 5x5 square in every image; class 2 (rare): an L of
    5 pixels in every ``rare_every``-th image; void: the first 3 pixels of every third image."""
    g = torch.Generator().manual_seed(seed)
    images, masks = [], []
    for i in range(n):
        H, W = sizes[i % len(sizes)] if sizes else (size, size)
        m = torch.zeros(H, W, dtype=torch.int64)
        r, c = (int(torch.randint(0, s - 6, (1,), generator=g)) for s in (H, W))
        m[r:r + 5, c:c + 5] = 1
        if i % rare_every == 0:
            m[H - 5:H - 1, 2] = 2
            m[H - 2, 3] = 2
        if i % 3 == 0:
            m[0, :3] = VOID
        base = torch.rand(channels, H, W, generator=g) * 40
        base = base + 150.0 * (m == 1) + 230.0 * (m == 2)
        images.append(base.clamp(0, 255).to(torch.uint8))
        masks.append(m)
    return SegSet(images, masks, ["background", "square", "ell"], VOID, ids=[f"im{i}" for i in range(n)])


def context(train: SegSet, seed: int = 0, source=None, cache_dir=None, artifacts_dir=None, minority=(2,)) -> Context:
    return Context(track="segmentation", class_names=list(train.class_names),
                   instance_counts=train.pixel_counts(), image_counts=train.image_counts(),
                   minority=list(minority), seed=seed,
                   budget={"epochs": 1, "batch_size": 8, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0,
                           "warmup_epochs": 0, "lr_steps": {}, "budget_unit": "steps", "augment": "none",
                           "gan": dict(GAN)},
                   source=source, cache_dir=cache_dir, artifacts_dir=artifacts_dir, artifact_stem="cell",
                   data_key={"dataset": "tiny", "seed": seed}, ignore_index=VOID)


@pytest.fixture(scope="module")
def prepared():
    train = tiny_segset()
    ctx = context(train)
    return train, LabelGan().prepare(train, ctx), ctx


def test_new_maps_paste_real_shapes_on_host_pixels_only(prepared):
    train, out, ctx = prepared
    note = ctx.record["label_gan"]
    n = len(train)
    assert note["host"] == 0 and note["fill"] == [2] and note["maps_added"] == len(out) - n > 0
    assert out.synthetic[:n].sum() == 0 and out.synthetic[n:].all()
    for k in range(note["maps_added"]):
        new, sid = out.masks[n + k], out.ids[n + k]
        assert sid.endswith(f"-label-gan{k}")
        host_map = train.masks[train.ids.index(sid.rsplit("-label-gan", 1)[0])]
        changed = new != host_map
        assert changed.any()
        assert (host_map[changed] == 0).all() and (new[changed] == 2).all()  # only host pixels become rare
        assert torch.equal(new == VOID, host_map == VOID)  # void untouched
        assert not (host_map == 2).any()  # host maps hold no filled class here
        # what was pasted is whole training L shapes (5 pixels each; pasted Ls may touch)
        pasted = class_regions([torch.where(changed, new, 0)], [2])[2]
        assert pasted and all(int(p.sum()) % 5 == 0 for p in pasted)


def test_targets_and_counts_reached_are_exact(prepared):
    train, out, ctx = prepared
    note = ctx.record["label_gan"]
    counts = train.pixel_counts()
    assert note["before"] == counts
    # full: up to the largest non-host class's pixel count
    assert note["target"] == [counts[0], counts[1], counts[1]]
    assert note["reached"] == out.pixel_counts()
    assert note["target"][2] <= note["reached"][2] < note["target"][2] + 5  # less than one more region
    assert note["reached"][2] - counts[2] == 5 * note["regions_pasted"][2]  # host maps hold no L
    # host maps: the quarter of the maps without an L with the fewest non-background pixels
    clean = [i for i, m in enumerate(train.masks) if not (m == 2).any()]
    busy = {i: int(((train.masks[i] > 0) & (train.masks[i] != VOID)).sum()) for i in clean}
    quarter = sorted(clean, key=lambda i: (busy[i], i))[:-(-len(clean) // 4)]
    used = {train.ids.index(sid.rsplit("-label-gan", 1)[0]) for sid in out.ids[len(train):]}
    assert used <= set(quarter)


def test_generated_pairs_are_uint8_images_of_their_maps(prepared):
    train, out, _ = prepared
    n = len(train)
    for img, m in zip(out.images[n:], out.masks[n:]):
        assert img.dtype == torch.uint8 and img.shape == (1, *m.shape)
    for a, b in zip(out.images[:n], train.images):
        assert a is b
    json.dumps(prepared[2].record)


def test_deterministic_for_a_seed():
    train = tiny_segset()
    a = LabelGan().prepare(train, context(train, seed=3))
    b = LabelGan().prepare(train, context(train, seed=3))
    c = LabelGan().prepare(train, context(train, seed=4))
    assert len(a) == len(b) and a.ids == b.ids
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
    assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
    assert not (len(a) == len(c) and all(torch.equal(x, y) for x, y in zip(a.masks, c.masks)))


def test_blend_fraction_and_the_generator_cache(tmp_path):
    train = tiny_segset()
    first_ctx = context(train, cache_dir=tmp_path)
    first = LabelGan().prepare(train, first_ctx)
    again_ctx = context(train, cache_dir=tmp_path)
    again = LabelGan().prepare(train, again_ctx)
    assert first_ctx.record["generator_cache"] == "miss" and again_ctx.record["generator_cache"] == "hit"
    assert all(torch.equal(x, y) for x, y in zip(first.images, again.images))  # the cached generator
    half_ctx = context(train, cache_dir=tmp_path)
    LabelGan(blend="0.5", per_image=2).prepare(train, half_ctx)
    assert half_ctx.record["generator_cache"] == "hit"  # blend and per_image do not change the GAN
    counts = train.pixel_counts()
    note = half_ctx.record["label_gan"]
    assert note["target"][2] == counts[2] + int(0.5 * (counts[1] - counts[2]))
    assert note["target"][2] <= note["reached"][2] < note["target"][2] + 5
    other_ctx = context(train, cache_dir=tmp_path)
    LabelGan(lambda_l1=10.0).prepare(train, other_ctx)
    assert other_ctx.record["generator_cache"] == "miss"


def test_sample_quality_and_grid(tmp_path):
    train = tiny_segset()
    source = Source("tiny", tiny_segset(rare_every=1, seed=1), tiny_segset(n=4, seed=2), {"fingerprint": "tiny"})
    ctx = context(train, source=source, cache_dir=tmp_path / "cache", artifacts_dir=tmp_path / "samples")
    out = LabelGan().prepare(train, ctx)
    for key in ("fid_mean", "kid_mean", "gan_test_mean"):
        assert isinstance(ctx.metrics[key], float) and np.isfinite(ctx.metrics[key])
    assert ctx.metrics["fid_per_class"][2] is not None  # the rare class was generated and scored
    assert ctx.record["feature_extractor_cache"] == "miss"
    filled = ctx.record["label_gan_quality_filled"]
    assert filled["fid"] == pytest.approx(ctx.metrics["fid_per_class"][2])
    png = tmp_path / "samples" / "cell.png"
    assert ctx.record["samples_png"] == str(png)
    rows = min(8, len(train), len(out) - len(train))
    with Image.open(png) as im:  # 5 cells of 96 px (16 px upscaled x6) a row, 1 px padding
        assert im.size == (5 * 97 + 1, rows * 97 + 1)


def test_region_crops_cover_every_class_region():
    m = torch.zeros(8, 8, dtype=torch.int64)
    m[1:4, 1:4] = 1
    m[5:7, 5:8] = 1
    m[6, 0] = 2  # a speck: left out
    m[0, 7] = VOID
    img = (m.clamp(max=2) * 100).to(torch.uint8)[None]
    crops = region_crops([img], [m], ["bg", "a", "b"], size=6)
    assert sorted(crops.labels.tolist()) == [0, 1, 1]
    assert crops.images.shape == (3, 1, 6, 6) and crops.images.dtype == torch.uint8
    assert (crops.images[crops.labels == 1] == 100).all()


def test_filled_classes_and_targets():
    counts = [1000, 400, 200, 40, 10]
    assert filled_classes(counts, [3, 4, 0], host=0) == [3, 4]
    assert filled_classes(counts, [], host=0) == [3, 4]  # below sqrt(400 * 10) = 63
    assert filled_classes([1000, 400, 0, 40], [], host=0) == [3]  # a class with no pixel has no shape
    assert filled_classes([1000, 30], [1], host=0) == [1]
    assert targets([1000, 30], 0, [1], "full") == [1000, 30]  # one non-host class: nothing to fill
    assert targets(counts, 0, [3, 4], "full") == [1000, 400, 200, 400, 400]
    assert targets(counts, 0, [3, 4], "0.5") == [1000, 400, 200, 220, 205]


def test_nothing_to_fill_returns_the_set_untouched():
    train = tiny_segset()
    binary = SegSet(train.images, [torch.where(m == VOID, m, m.clamp(max=1)) for m in train.masks], ["bg", "fg"], VOID)
    ctx = context(binary, minority=(1,))  # one non-host class: it is the largest, its deficit 0
    assert LabelGan().prepare(binary, ctx) is binary
    assert ctx.record["label_gan"]["skipped"] == "nothing to generate" and "generator_cache" not in ctx.record


def test_rgb_images_of_unequal_sizes_and_the_segmenter_trains():
    train = tiny_segset(n=12, channels=3, rare_every=3, sizes=[(16, 20), (12, 16), (20, 12)])
    ctx = context(train)
    out = LabelGan(crop=24).prepare(train, ctx)
    assert ctx.record["label_gan"]["window"] == 16  # at most the largest shorter side; 12 px sides padded
    for img, m in zip(out.images[len(train):], out.masks[len(train):]):
        assert img.shape == (3, *m.shape)
    model = build_segmenter("unet", num_classes=3, in_channels=3, mean=[0.5] * 3, std=[0.25] * 3)
    history, training = fit(model, out, LabelGan(), ctx)
    assert history["loss"] and all(np.isfinite(history["loss"]))


def test_networks_void_channel_and_any_size():
    m = torch.tensor([[[0, 1], [2, VOID]]])
    oh = one_hot(m, 3)
    assert oh.shape == (1, 4, 2, 2) and oh[0, 3, 1, 1] == 1 and oh.sum() == 4
    torch.manual_seed(0)
    G = UNetGenerator(3, 1, width=4, depth=3)
    maps = [torch.randint(0, 3, (13, 21)), torch.randint(0, 3, (8, 8)), torch.randint(0, 3, (13, 21))]
    images = render(G, maps, "cpu")
    assert [tuple(x.shape) for x in images] == [(1, 13, 21), (1, 8, 8), (1, 13, 21)]
    D = MultiScaleDiscriminator(3 + 1 + 1, width=4, layers=2, scales=2)
    outs = D(one_hot(torch.zeros(2, 32, 32, dtype=torch.int64), 3), torch.zeros(2, 1, 32, 32))
    assert [tuple(s.shape) for s, _ in outs] == [(2, 1, 6, 6), (2, 1, 2, 2)] and len(outs[0][1]) == 3
    assert window(32, 8, [torch.zeros(40, 64)]) == 32 and window(32, 8, [torch.zeros(20, 64)]) == 16


def test_bad_parameters_are_usage_errors():
    for bad in ({"blend": "2"}, {"depth": 1}, {"crop": 4}, {"width": 0}, {"per_image": 0}, {"lambda_l1": -1.0}):
        with pytest.raises(UsageError):
            LabelGan(**bad)
    with pytest.raises(UsageError, match="segmentation"):
        LabelGan().prepare(torch.zeros(2), context(tiny_segset()))


def test_check_method():
    check_method(LabelGan, track="segmentation")
