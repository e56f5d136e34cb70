"""Scene sources and detection recipes: exact counts, exact boxes / occlusion, determinism,
an untouched test split, one-line errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.imageset import Source
from imbench.data_recipes.interclass import longtail_counts, step_counts
from imbench.data_recipes.recipes import Imbalanced
from imbench.data_recipes.scenes import SCENE_RECIPES, SCENE_SOURCES, load_scenes
from imbench.data_recipes.scenes import compose, digit_scenes, recipes  # noqa: F401 (registers)
from imbench.data_recipes.scenes.compose import (Composer, ObjectSpec, area_ranges, occlusion_bucket,
                                                 size_bucket)
from imbench.data_recipes.scenes.recipes import apply_scene_recipe, resolve_scene_recipe
from imbench.data_recipes.sceneset import SceneSet, make_target

C = 10


@pytest.fixture(scope="module")
def src() -> Source:
    return load_scenes("digit-scenes")


def _buckets(scenes: SceneSet, S: int = 64):
    ranges = area_ranges(S)
    sizes = {"small": 0, "medium": 0, "large": 0}
    occ = {"none": 0, "partial": 0, "heavy": 0}
    per_class_size = np.zeros((scenes.num_classes, 3), dtype=int)
    for t in scenes.targets:
        for a, o, c in zip(t["area"].tolist(), t["occlusion"].tolist(), t["labels"].tolist()):
            b = size_bucket(a, ranges)
            sizes[b] += 1
            occ[occlusion_bucket(o)] += 1
            per_class_size[c, ["small", "medium", "large"].index(b)] += 1
    return sizes, occ, per_class_size


def _check_geometry(scenes: SceneSet, S: int = 64):
    """Boxes are the tight box of the visible mask, inside the image; area = box area."""
    for img, t in zip(scenes.images, scenes.targets):
        assert img.shape == (1, S, S) and img.dtype == torch.uint8
        boxes = t["boxes"].as_subclass(torch.Tensor)
        masks = t["masks"].as_subclass(torch.Tensor).bool()
        assert boxes.shape == (len(t["labels"]), 4) and masks.shape == (len(t["labels"]), S, S)
        assert tuple(t["boxes"].canvas_size) == (S, S)
        for box, m, a, o in zip(boxes, masks, t["area"], t["occlusion"]):
            rows, cols = torch.nonzero(m.any(1)).flatten(), torch.nonzero(m.any(0)).flatten()
            tight = torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)
            assert torch.equal(box, tight)
            x1, y1, x2, y2 = box.tolist()
            assert 0 <= x1 < x2 <= S and 0 <= y1 < y2 <= S
            assert a.item() == (x2 - x1) * (y2 - y1)
            assert a.item() not in ((S / 8) ** 2, (3 * S / 8) ** 2)  # never on a COCOeval bucket edge
            assert m.sum() >= compose.MIN_VISIBLE and 0 <= o.item() <= compose.MAX_OCCLUSION
            assert (img[0][m] > compose.MASK_THRESHOLD).all()  # visible pixels are the digit's


# ---------------------------------------------------------------- buckets, source

def test_area_ranges_at_64_px():
    assert area_ranges(64) == {"all": [0.0, 1e10], "small": [0.0, 64.0], "medium": [64.0, 576.0],
                               "large": [576.0, 1e10]}
    assert area_ranges(256)["small"] == [0.0, 32.0 ** 2] and area_ranges(256)["large"][0] == 96.0 ** 2
    assert [size_bucket(a, area_ranges(64)) for a in (63, 64, 575, 576)] == ["small", "medium", "medium", "large"]
    assert [occlusion_bucket(o) for o in (0, 0.099, 0.1, 0.299, 0.3, 0.6)] == \
        ["none", "none", "partial", "partial", "heavy", "heavy"]


def test_registries():
    spec = SCENE_SOURCES.get("digit-scenes")
    assert spec.needs == "nothing" and spec.tracks == ("detection",)  # segmentation registers its own
    assert set(SCENE_RECIPES.names()) >= {"natural", "rare-class", "small-objects", "occlusion", "fg-bg"}
    assert resolve_scene_recipe("rare-class") == {"ir": 10.0, "profile": "longtail", "mu": 0.5, "n_max": 240,
                                                  "class_order": "random", "max_objects": 4}
    p = resolve_scene_recipe("rare-class", {"ir": "20", "n_max": "100", "profile": "step"})
    assert p["ir"] == 20.0 and p["n_max"] == 100 and resolve_scene_recipe("rare-class", p) == p


def test_digit_scenes_source(src):
    info = src.info
    assert isinstance(src.train, SceneSet) and isinstance(src.test, SceneSet) and src.composer is not None
    assert info["class_names"] == [str(c) for c in range(10)] and info["files"] == ["sklearn.datasets.load_digits"]
    assert info["area_ranges"] == area_ranges(64) and info["image_size"] == 64
    assert len(info["fingerprint"]) == 16 and info["split"]["test_fraction"] == 0.3
    assert info["sizes"] == {"train": len(src.train), "test": len(src.test)}
    assert src.train.instance_counts() == [150] * C
    sizes, occ, per_class = _buckets(src.train)
    assert sizes == {"small": 500, "medium": 500, "large": 500} and (per_class == 50).all()
    assert occ == {"none": 900, "partial": 300, "heavy": 300}
    # test: 6 objects per (class, size, occlusion) cell
    sizes, occ, per_class = _buckets(src.test)
    assert src.test.instance_counts() == [54] * C and (per_class == 18).all()
    assert sizes == {"small": 180, "medium": 180, "large": 180} and occ == {"none": 180, "partial": 180, "heavy": 180}
    assert info["instance_counts"]["test"] == [54] * C
    assert max(src.test.objects_per_image()) <= 4 and min(src.test.objects_per_image()) >= 1
    _check_geometry(src.test)
    json.dumps(info)


def test_source_errors_are_one_line():
    for bad in (16, 1000, "big", 64.5):
        with pytest.raises(UsageError) as e:
            digit_scenes.load_digit_scenes(image_size=bad)
        assert "\n" not in str(e.value) and "image size" in str(e.value)


# ---------------------------------------------------------------- composer

def test_occlusion_is_exact_on_a_hand_built_scene(src):
    comp: Composer = src.composer
    scene = comp.render([ObjectSpec(3, 30, 0.0), ObjectSpec(5, 30, 0.4)], seed=5)
    t, full = scene.target, scene.full_masks
    vis = t["masks"].as_subclass(torch.Tensor).numpy().astype(bool)
    assert t["labels"].tolist() == [3, 5] and full.shape == vis.shape == (2, 64, 64)
    assert not (vis & ~full).any()  # visible is part of the full mask
    recomputed = [1 - vis[k].sum() / full[k].sum() for k in range(2)]
    assert t["occlusion"].tolist() == pytest.approx(recomputed, abs=1e-6)
    assert recomputed[0] == 0 and abs(recomputed[1] - 0.4) <= comp.occlusion_tol
    img = scene.image[0].numpy()
    hidden = full[1] & ~vis[1]
    lo, hi = comp.occluder_levels
    assert hidden.any() and (img[hidden] >= lo).all() and (img[hidden] <= hi).all()  # under the occluder
    bg = ~(full.any(0))
    assert (img[bg] <= hi).all()
    # the digit height is what was asked (the mask may lose a blurred border row)
    ys = np.flatnonzero(full[0].any(1))
    assert 27 <= len(ys) <= 30
    # same seed, same scene; another seed, another
    again = comp.render([ObjectSpec(3, 30, 0.0), ObjectSpec(5, 30, 0.4)], seed=5)
    assert torch.equal(again.image, scene.image)
    other = comp.render([ObjectSpec(3, 30, 0.0), ObjectSpec(5, 30, 0.4)], seed=6)
    assert not torch.equal(other.image, scene.image)
    empty = comp.compose([[]], seed=0)
    assert empty.targets[0]["boxes"].shape == (0, 4) and empty.targets[0]["masks"].shape == (0, 64, 64)


# ---------------------------------------------------------------- recipes with a composer

def test_natural_is_the_source_split(src):
    r = apply_scene_recipe(src, "natural", None, 0)
    assert isinstance(r, Imbalanced) and r.train is src.train and r.test is src.test
    assert r.counts == [150] * C and r.minority == [] and r.info["n_images"] == len(src.train)


@pytest.mark.parametrize("params,expected", [
    ({"ir": 10, "n_max": 60, "class_order": "index"}, longtail_counts(60, C, 10)),
    ({"profile": "step", "ir": 5, "mu": 0.3, "n_max": 50, "class_order": "index"}, step_counts(50, C, 5, 0.3)),
])
def test_rare_class_exact_instance_counts(src, params, expected):
    r = apply_scene_recipe(src, "rare-class", params, 0)
    assert r.counts == expected and r.info["counts"] == expected and r.info["reached"] == expected
    if params.get("profile") == "step":
        assert r.minority == [7, 8, 9]
    else:
        cut = math.sqrt(max(expected) * min(expected))
        assert r.minority == [c for c in range(C) if expected[c] < cut] and r.minority
    assert max(r.train.objects_per_image()) <= 4 and min(r.train.objects_per_image()) >= 1
    assert r.test is src.test and r.index is None
    info = json.loads(json.dumps(r.info))
    assert info["n_instances"] == sum(expected) and sum(info["objects_per_image"]) == len(r.train)
    assert sum(info["size_buckets"].values()) == sum(expected)
    _check_geometry(r.train)


def test_rare_class_random_order_permutes_the_profile(src):
    r = apply_scene_recipe(src, "rare-class", {"ir": 10, "n_max": 40, "class_order": "random"}, 3)
    prof = longtail_counts(40, C, 10)
    assert sorted(r.counts) == sorted(prof)
    assert [r.counts[c] for c in r.info["class_order"]] == prof


def test_rare_class_orders_the_classes_at_random_by_default(src):
    # the rare classes are not always the digits 5-9: a permutation seeded by the subset seed
    orders = [apply_scene_recipe(src, "rare-class", {"ir": 10, "n_max": 40}, s).info["class_order"]
              for s in (0, 1)]
    assert orders[0] != orders[1] and list(range(C)) not in orders
    assert orders[0] == apply_scene_recipe(src, "rare-class", {"ir": 10, "n_max": 40, "class_order": "random"},
                                           0).info["class_order"]
    assert apply_scene_recipe(src, "rare-class", {"ir": 10, "n_max": 40, "class_order": "index"},
                              0).info["class_order"] == list(range(C))


def test_small_objects_exact_size_buckets(src):
    r = apply_scene_recipe(src, "small-objects", {"n_per_class": 20, "ir": 4}, 0)
    sizes, _, per_class = _buckets(r.train)
    assert sizes == {"small": 5 * C, "medium": 20 * C, "large": 20 * C}
    assert (per_class == [5, 20, 20]).all() and r.counts == [45] * C
    assert r.minority == [] and r.info["minority_buckets"] == ["small"]
    assert r.info["size_buckets"] == sizes
    r = apply_scene_recipe(src, "small-objects", {"n_per_class": 10, "ir": 2, "rare_bucket": "large"}, 0)
    assert _buckets(r.train)[0] == {"small": 10 * C, "medium": 10 * C, "large": 5 * C}


def test_occlusion_exact_buckets(src):
    r = apply_scene_recipe(src, "occlusion", {"n_per_class": 30, "ir": 5}, 1)
    _, occ, _ = _buckets(r.train)
    assert occ == {"none": 30 * C, "partial": 0, "heavy": 6 * C} and r.counts == [36] * C
    heavy = torch.cat([t["occlusion"] for t in r.train.targets])
    heavy = heavy[heavy > 0]
    assert len(heavy) == 6 * C and (heavy >= 0.3).all() and (heavy < 0.6).all()
    assert r.info["minority_buckets"] == ["heavy"] and r.minority == []
    _check_geometry(r.train)


@pytest.mark.parametrize("share,k", [(0.5, 1), (0.8, 2), (0.0, 3)])
def test_fg_bg_exact_empty_share(src, share, k):
    r = apply_scene_recipe(src, "fg-bg", {"n_images": 50, "empty_share": share, "objects_per_image": k}, 0)
    per_image = r.train.objects_per_image()
    n_empty = math.floor(share * 50 + 1e-9)
    assert len(per_image) == 50 and per_image.count(0) == n_empty and r.info["empty_images"] == n_empty
    assert set(per_image) <= {0, k} and sum(r.counts) == (50 - n_empty) * k
    assert max(r.counts) - min(r.counts) <= 1


def test_determinism_and_untouched_test_split(src):
    a = apply_scene_recipe(src, "rare-class", {"n_max": 30}, 7)
    b = apply_scene_recipe(src, "rare-class", {"n_max": 30}, 7)
    c = apply_scene_recipe(src, "rare-class", {"n_max": 30}, 8)
    assert a.train.fingerprint() == b.train.fingerprint() == a.info["subset_fingerprint"]
    assert c.train.fingerprint() != a.train.fingerprint() and sorted(c.counts) == sorted(a.counts)
    d = apply_scene_recipe(src, "occlusion", {"n_per_class": 10}, 7)
    test_fp = src.test.fingerprint()
    assert all(r.test.fingerprint() == test_fp for r in (a, c, d))
    # the test set depends on (split_seed, image_size) only; a new load reproduces everything
    fresh = digit_scenes.load_digit_scenes(split_seed=0)
    assert fresh.test.fingerprint() == test_fp and fresh.info["fingerprint"] == src.info["fingerprint"]
    assert apply_scene_recipe(fresh, "rare-class", {"n_max": 30}, 7).train.fingerprint() == a.train.fingerprint()


# ---------------------------------------------------------------- selection without a composer

def _fake_source(seed: int = 0, n: int = 120, k: int = 4) -> Source:
    g = np.random.default_rng(seed)

    def scenes(m):
        images, targets = [], []
        for _ in range(m):
            n_obj = int(g.integers(0, 4))
            labels = g.choice(k, n_obj, p=[0.4, 0.3, 0.2, 0.1])
            xy = g.integers(0, 20, (n_obj, 2))
            boxes = np.concatenate([xy, xy + g.integers(2, 10, (n_obj, 2))], 1)
            images.append(torch.zeros(3, 32, 32, dtype=torch.uint8))
            targets.append(make_target(boxes, labels, (32, 32)))
        return SceneSet(images, targets, [f"k{i}" for i in range(k)])

    return Source("fake-voc", scenes(n), scenes(20), {"area_ranges": area_ranges(256)})


def test_rare_class_selects_images_without_a_composer():
    fake = _fake_source()
    r = apply_scene_recipe(fake, "rare-class", {"n_max": 40, "ir": 8, "class_order": "index"}, 0)
    asked = longtail_counts(40, 4, 8)
    assert r.info["mode"] == "selected" and r.info["asked"] == asked
    reached = r.info["reached"]
    assert all(0 < got <= want for got, want in zip(reached, asked)) and r.counts == reached
    assert r.index is not None and len(r.index) == len(r.train) and (np.diff(r.index) > 0).all()
    assert r.train.fingerprint() == fake.train.subset(r.index).fingerprint()
    assert 0 not in r.train.objects_per_image() and r.test is fake.test
    again = apply_scene_recipe(fake, "rare-class", {"n_max": 40, "ir": 8, "class_order": "index"}, 0)
    assert np.array_equal(again.index, r.index)
    json.dumps(r.info)
    nat = apply_scene_recipe(fake, "natural", None, 0)
    assert nat.train is fake.train and nat.counts == fake.train.instance_counts()
    # a real set's minority: below the geometric midpoint of its counts (rare_ap is defined)
    counts = fake.train.instance_counts()
    cut = (max(counts) * min(counts)) ** 0.5
    assert nat.minority == [c for c, n in enumerate(counts) if n < cut] and nat.minority
    assert nat.info["absent_classes"] == []


def test_natural_leaves_an_absent_class_out_of_the_midpoint():
    from imbench.data_recipes.imageset import Source
    from imbench.data_recipes.sceneset import make_target

    def scenes(labels_per_image):
        images = [torch.zeros((1, 32, 32), dtype=torch.uint8) for _ in labels_per_image]
        targets = [make_target([[2 + 6 * j, 2, 6 + 6 * j, 6] for j in range(len(ls))], ls, (32, 32))
                   for ls in labels_per_image]
        return SceneSet(images, targets, ["a", "b", "c", "d"])

    train = scenes([[0, 0, 0], [0, 0, 0], [0, 0, 1], [2, 2, 2], [2, 0, 0]])  # counts 10, 1, 4, 0
    src = Source("fake", train, scenes([[0, 1, 2, 3]]), {"area_ranges": area_ranges(32)})
    nat = apply_scene_recipe(src, "natural", None, 0)
    assert nat.counts == [10, 1, 4, 0] and nat.minority == [1] and nat.info["absent_classes"] == [3]


@pytest.mark.parametrize("name", ["small-objects", "occlusion", "fg-bg"])
def test_composer_recipes_need_a_composer(name):
    with pytest.raises(UsageError) as e:
        apply_scene_recipe(_fake_source(n=10), name, None, 0)
    msg = str(e.value)
    assert "\n" not in msg and f"recipe {name} needs a source that can compose scenes (digit-scenes)" in msg


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("name,params,needle", [
    ("rare-class", {"ir": 0.5}, "ir must be"),
    ("rare-class", {"profile": "zipf"}, "profile must be one of"),
    ("rare-class", {"n_max": 0}, "n_max"),
    ("rare-class", {"max_objects": 9}, "max_objects"),
    ("rare-class", {"ir": "lots"}, "must be a number"),
    ("rare-class", {"alpha": 1}, "unknown parameter alpha"),
    ("small-objects", {"n_per_class": 5, "ir": 10}, "0 objects per class"),
    ("small-objects", {"rare_bucket": "tiny"}, "rare_bucket must be one of"),
    ("occlusion", {"ir": 0}, "ir must be"),
    ("fg-bg", {"empty_share": 1.0}, "empty_share must be in [0, 1)"),
    ("fg-bg", {"empty_share": -0.1}, "empty_share must be in [0, 1)"),
    ("fg-bg", {"objects_per_image": 0}, "objects_per_image"),
])
def test_impossible_parameters_are_one_line_usage_errors(name, params, needle):
    with pytest.raises(UsageError) as e:
        resolve_scene_recipe(name, params)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_errors_that_need_the_source(src):
    with pytest.raises(UsageError, match="would get 0 objects") as e:
        apply_scene_recipe(src, "rare-class", {"n_max": 5, "ir": 10}, 0)
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="seed"):
        apply_scene_recipe(src, "natural", None, -1)
    with pytest.raises(UsageError, match="unknown recipe"):
        apply_scene_recipe(src, "longtail", None, 0)


def test_mnist_scenes_compose_real_mnist_digits(shared_data):
    """MNIST's digits from --data-root: the mnist source's disjoint train / test pools, the same
    composition as digit-scenes (28x28 glyphs instead of 8x8)."""
    src = load_scenes("mnist-scenes", data_root=str(shared_data))
    assert src.info["dataset"] == "mnist-scenes" and src.info["split"]["mnist"]["kind"] == "stratified"
    assert src.train.instance_counts() == [150] * 10 and src.test.instance_counts() == [54] * 10
    assert any(f.endswith("t10k-images-idx3-ubyte.gz") for f in src.info["files"])
    assert src.info["fingerprint"] != load_scenes("digit-scenes").info["fingerprint"]
    r = apply_scene_recipe(src, "rare-class", {"n_max": 40}, 0)
    assert r.counts == r.info["asked"] and r.info["mode"] == "composed"
    with pytest.raises(UsageError, match="data-root"):
        load_scenes("mnist-scenes")
