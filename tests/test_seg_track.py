"""The segmentation track: digit-scenes label maps, the pixel recipes, models, the loop, one cell."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.plugins import load_methods, method_class
from imbench.data_recipes.interclass import longtail_counts
from imbench.data_recipes.scenes import load_scenes
from imbench.data_recipes.segmentation import SEG_RECIPES, load_segset
from imbench.data_recipes.segmentation.digit_scenes import label_map
from imbench.data_recipes.segmentation.recipes import apply_seg_recipe, resolve_seg_recipe
from imbench.tasks.segmentation.models import MODELS, build_segmenter
from imbench.tasks.segmentation.train import collate, pixel_ce, predict
from imbench.testing import tiny_seg_context, tiny_segset

load_methods()


@pytest.fixture(scope="module")
def source():
    return load_segset("digit-scenes", image_size=32)


def test_label_maps_are_the_scenes_visible_masks(source):
    scenes = load_scenes("digit-scenes", image_size=32)
    assert source.train.class_names == ["background"] + [str(d) for d in range(10)]
    assert len(source.train) == len(scenes.train) and len(source.test) == len(scenes.test)
    for i in (0, 5, 17):
        img, t, m = scenes.train.images[i], scenes.train.targets[i], source.train.masks[i]
        assert torch.equal(source.train.images[i], img)
        expected = torch.zeros_like(m)
        for mask, c in zip(t["masks"].as_subclass(torch.Tensor).bool(), t["labels"].tolist()):
            expected[mask] = c + 1
        assert torch.equal(m, expected) and torch.equal(label_map(img, t), expected)
    # every digit object's visible pixels are labelled, and nothing else is
    fg = sum(int(t["masks"].as_subclass(torch.Tensor).sum()) for t in scenes.test.targets)
    assert sum(source.test.pixel_counts()[1:]) == fg


def test_rare_pixels_counts_are_exact_and_recorded(source):
    imb = apply_seg_recipe(source, "rare-pixels", {"ir": 10, "n_max": 60}, 0)
    info = imb.info
    order = info["class_order"]  # random by default: a seeded permutation, recorded
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert [info["object_counts"][c] for c in order] == longtail_counts(60, 10, 10.0)  # the long tail, exact
    assert imb.counts == imb.train.pixel_counts() == info["pixel_counts"]
    digits = imb.counts[1:]
    assert digits[order[0]] > digits[order[-1]] and info["pixel_ir"] == max(digits) / min(digits)
    assert imb.minority == [c + 1 for c in range(10) if info["object_counts"][c] < np.sqrt(60 * 6)]
    again = apply_seg_recipe(source, "rare-pixels", {"ir": 10, "n_max": 60}, 0)
    assert again.train.fingerprint() == imb.train.fingerprint()
    other = apply_seg_recipe(source, "rare-pixels", {"ir": 10, "n_max": 60}, 1)
    assert other.train.fingerprint() != imb.train.fingerprint()


def test_fg_bg_and_occlusion(source):
    imb = apply_seg_recipe(source, "fg-bg", {"n_images": 100, "empty_share": 0.7}, 0)
    empty = sum(1 for m in imb.train.masks if not (m > 0).any())
    assert len(imb.train) == 100 and empty == 70 and imb.minority == list(range(1, 11))
    assert imb.info["background_share"] == imb.counts[0] / sum(imb.counts)
    occ = apply_seg_recipe(source, "occlusion", {"ir": 4, "n_per_class": 8}, 0)
    assert occ.info["object_counts"] == [10] * 10 and occ.minority == [] and occ.info["minority_buckets"] == ["heavy"]


def test_recipe_errors_name_the_segmentation_recipe(source):
    assert set(SEG_RECIPES) == {"natural", "rare-pixels", "fg-bg", "occlusion"}
    with pytest.raises(UsageError, match="recipe rare-pixels: unknown parameter"):
        resolve_seg_recipe("rare-pixels", {"bogus": 1})
    with pytest.raises(UsageError, match="recipe rare-pixels"):
        resolve_seg_recipe("rare-pixels", {"ir": 0.5})
    with pytest.raises(UsageError, match="unknown parameter"):
        resolve_seg_recipe("natural", {"ir": 10})


def test_natural_minority_by_pixel_midpoint(tmp_path):
    from tests.test_seg_sources import write_folder

    root = write_folder(tmp_path / "d", classes={"0": "background", "128": "thing", "255": None})
    src = load_segset("seg-folder", data_root=root)
    imb = apply_seg_recipe(src, "natural", {}, 0)
    assert imb.counts == src.train.pixel_counts() and imb.minority == [1]
    with pytest.raises(UsageError, match="can only use natural"):
        apply_seg_recipe(src, "rare-pixels", {}, 0)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
def test_models_map_any_size_to_logits(name, channels):
    if name == "fcn-resnet50" and channels == 3:
        pytest.skip("one fcn-resnet50 case is enough (it is GPU-sized)")
    m = build_segmenter(name, num_classes=4, in_channels=channels, mean=[0.5] * channels, std=[0.25] * channels)
    m.eval()
    out = m(torch.rand(2, channels, 30, 37))
    assert out.shape == (2, 4, 30, 37) and torch.isfinite(out).all()


def test_the_unet_variants_differ_in_resolution_and_depth_as_named():
    nets = {n: build_segmenter(n, num_classes=11, in_channels=1, mean=[0.5], std=[0.25]) for n in ("unet", "unet-full", "unet-deep")}
    # unet: stride-2 stem + one pool; unet-full: the pool only (full resolution); unet-deep: stem + two pools
    assert {n: m.info()["stride"] for n, m in nets.items()} == {"unet": 4, "unet-full": 2, "unet-deep": 8}
    assert isinstance(nets["unet-full"].net.stem, torch.nn.Identity) and len(nets["unet-deep"].net.down) == 3
    params = {n: m.info()["parameters"] for n, m in nets.items()}
    assert params["unet-full"] < params["unet"] < params["unet-deep"]  # the stem's weights; the third level's


def test_collate_pads_with_void_and_pixel_ce_ignores_it():
    imgs = [torch.full((1, 4, 5), 255, dtype=torch.uint8), torch.zeros((1, 6, 3), dtype=torch.uint8)]
    masks = [torch.ones(4, 5, dtype=torch.int64), torch.zeros(6, 3, dtype=torch.int64)]
    x, y = collate(imgs, masks, 255, "cpu")
    assert x.shape == (2, 1, 6, 5) and y.shape == (2, 6, 5)
    assert (y[0, 4:] == 255).all() and (y[1, :, 3:] == 255).all() and x[0, 0, 0, 0] == 1.0 and x[0, 0, 5, 0] == 0
    logits = torch.randn(2, 3, 6, 5)
    keep = y != 255
    ref = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], y[keep])
    assert torch.allclose(pixel_ce(255)(logits, y), ref)
    assert pixel_ce(255)(logits, torch.full_like(y, 255)) == 0


def test_predict_batches_by_size_and_keeps_order():
    class Constant(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 3, *x.shape[-2:])
            out[:, 2] = x[:, 0]  # class 2 where the pixel is bright
            return out

    imgs = [torch.zeros((1, 4, 4), dtype=torch.uint8), torch.full((1, 3, 5), 200, dtype=torch.uint8),
            torch.full((1, 4, 4), 100, dtype=torch.uint8)]
    preds = predict(Constant(), imgs, "cpu", batch_size=1)
    assert [tuple(p.shape) for p in preds] == [(4, 4), (3, 5), (4, 4)]
    assert (preds[0] == 0).all() and (preds[1] == 2).all() and (preds[2] == 2).all()


def test_ros_balances_pixels_of_classes_not_everywhere():
    train = tiny_segset((10, 3))
    ctx = tiny_seg_context(train)
    out = method_class("ros")().prepare(train, ctx)
    note = ctx.record["ros_counts"]
    assert note["not_rebalanced"] == [0]  # background is in every image
    counts = out.pixel_counts()
    assert counts == note["reached"] and counts[2] >= train.pixel_counts()[1]  # class 2 caught up with class 1
    assert len(out) == len(train) + note["images_added"] and not out.synthetic.any()
    assert all(i.endswith("-copy") for i in out.ids[len(train):]) and out.ids[:len(train)] == train.ids


def test_copy_paste_pastes_exact_rare_regions():
    from imbench.baselines.region_paste import paste_regions

    x = torch.zeros(2, 1, 8, 8)
    y = torch.zeros(2, 8, 8, dtype=torch.int64)
    x[1, :, 2:4, 2:4], y[1, 2:4, 2:4] = 0.9, 2
    y[1, 0, :] = 255
    g = torch.Generator().manual_seed(0)
    nx, ny, n = paste_regions(x, y, torch.tensor([2]), g, paste_p=1.0, scale_min=1.0, scale_max=1.0, ignore_index=255)
    assert n == 1 and (ny[0] == 2).sum() == 4 and (ny[0] == 255).sum() == 0  # void never pasted
    assert torch.all(nx[0, 0][ny[0] == 2] == 0.9) and torch.equal(ny[1], y[1])


def test_one_cell_through_the_track(tmp_path):
    from imbench.testing import run_smoke_cell

    rec = run_smoke_cell("erm", tmp_path, track="segmentation", recipe_params={"n_max": 60})
    assert rec["status"] == "ok"
    m = rec["metrics"]
    assert len(m["per_class_iou"]) == 11 and m["labelled_pixels"] == sum(rec["class_counts"]["test"])
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == m["labelled_pixels"] and abs(m["pixel_accuracy"] - np.trace(cm) / cm.sum()) < 1e-12
    assert rec["class_counts"]["unit"] == "pixels" and rec["config"]["dataset"]["image_size"] == 32


def test_the_quick_grid_settings_stay_on_the_suites_own_data():
    """The quick segmentation grid's image_size (32) is for digit-scenes; a real set named on the
    command line keeps its size and, without --recipe, runs natural (noted)."""
    from imbench.benchmarks.plugins import load_methods
    from imbench.benchmarks.suite import Overrides, expand, load_suite

    load_methods()
    suite = load_suite("segmentation")
    notes: list[str] = []
    cells = expand(suite, Overrides(datasets=["seg-folder"], methods=["erm"], seeds=[0]), notes)
    assert {c["recipe"]["name"] for c in cells} == {"natural"} and len(cells) == 1
    assert "image_size" not in cells[0]["dataset"] and cells[0]["dataset"]["split_seed"] == 0
    assert len(notes) == 1 and "seg-folder takes only natural" in notes[0]
    sized = expand(suite, Overrides(datasets=["seg-folder"], methods=["erm"], seeds=[0], image_size=64))
    assert sized[0]["dataset"]["image_size"] == 64
    own = expand(suite, Overrides(datasets=["digit-scenes"], methods=["erm"], seeds=[0]))
    assert {c["dataset"]["image_size"] for c in own} == {32} and len(own) == 1
    assert {c["recipe"]["name"] for c in own} == {"rare-pixels"}  # fg-bg runs in the standard suite
