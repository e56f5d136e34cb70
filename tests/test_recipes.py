"""Imbalance recipes: exact counts, determinism, untouched test split, one-line errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.imageset import ImageSet, Source
from imbench.data_recipes.interclass import longtail_counts, step_counts
from imbench.data_recipes.recipes import RECIPES, Imbalanced, RecipeSpec, apply_recipe, resolve_recipe

C = 10
NAMES = [f"c{i}" for i in range(C)]


def _split(per_class: int, bright: int, seed: int) -> ImageSet:
    """``per_class`` noisy 8x8 images per class; the last ``bright`` of class 0 form a
    visually distinct (bright) sub-mode, the rest of class 0 are dark."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(C).repeat_interleave(per_class)
    images = torch.randint(0, 256, (C * per_class, 1, 8, 8), generator=g, dtype=torch.uint8)
    dark = torch.randint(0, 40, (per_class, 1, 8, 8), generator=g, dtype=torch.uint8)
    dark[per_class - bright:] += 210
    images[:per_class] = dark
    return ImageSet(images, labels, list(NAMES))


@pytest.fixture(scope="module")
def source() -> Source:
    return Source("synthetic", _split(60, 12, 0), _split(20, 4, 1))


def test_registry_lists_every_recipe():
    assert set(RECIPES.names()) >= {"longtail", "step", "binary", "drop-one", "counts", "intra"}
    spec = RECIPES.get("longtail")
    assert isinstance(spec, RecipeSpec) and spec.tracks == ("classification",)
    assert spec.defaults == {"class_order": "index", "n_max": 0, "ir": 100.0}
    assert all(RECIPES.get(n).summary and RECIPES.get(n).reference for n in RECIPES)


def test_cifar10_lt_reference_counts():
    assert longtail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert longtail_counts(5000, 10, 10) == [int(5000 * 10 ** (-p / 9)) for p in range(10)]
    assert longtail_counts(500, 100, 100)[-1] == 5 and longtail_counts(500, 100, 100)[0] == 500
    assert step_counts(5000, 10, 10, 0.5) == [5000] * 5 + [500] * 5
    assert step_counts(100, 10, 10, 0.3) == [100] * 7 + [10] * 3


def test_cifar10_lt_end_to_end_and_tail():
    # 10 x 5000 one-pixel images: the recipe reproduces CIFAR-10-LT IR 100 exactly
    labels = torch.arange(10).repeat_interleave(5000)
    imgs = (labels % 256).to(torch.uint8).reshape(-1, 1, 1, 1)
    src = Source("c10", ImageSet(imgs, labels, list(NAMES)), ImageSet(imgs[:10], labels[:10], list(NAMES)))
    r = apply_recipe(src, "longtail", {"ir": 100}, seed=0)
    assert r.counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert r.minority == [5, 6, 7, 8, 9] and r.info["n_max"] == 5000 and r.info["ir"] == 100.0


@pytest.mark.parametrize("name, params, counts, minority", [
    ("longtail", {"ir": 10}, [60, 46, 35, 27, 21, 16, 12, 10, 7, 6], [5, 6, 7, 8, 9]),
    ("longtail", {"ir": 4, "n_max": 40}, longtail_counts(40, 10, 4), [5, 6, 7, 8, 9]),
    ("step", {}, [60] * 5 + [6] * 5, [5, 6, 7, 8, 9]),
    ("step", {"ir": 3, "mu": 0.3, "n_max": 45}, [45] * 7 + [15] * 3, [7, 8, 9]),
    ("step", {"mu": 0}, [60] * 10, []),
    ("drop-one", {}, [6] + [60] * 9, [0]),
    ("drop-one", {"target": 3, "fraction": 0.57, "n_max": 50}, [50] * 3 + [28] + [50] * 6, [3]),
    ("counts", {"counts": "60,50,40,30,20,10,9,8,7,6"}, [60, 50, 40, 30, 20, 10, 9, 8, 7, 6], [5, 6, 7, 8, 9]),
    ("counts", {"counts": [40, 20, 10, 7, 5, 3, 2, 1, 1, 1]}, [40, 20, 10, 7, 5, 3, 2, 1, 1, 1], [4, 5, 6, 7, 8, 9]),
    ("counts", {"counts": "40/20/10/7/5/3/2/1/1/1"}, [40, 20, 10, 7, 5, 3, 2, 1, 1, 1], [4, 5, 6, 7, 8, 9]),
])
def test_exact_counts(source, name, params, counts, minority):
    r = apply_recipe(source, name, params, seed=3)
    assert isinstance(r, Imbalanced)
    assert r.counts == counts == r.train.counts() == r.info["counts"]
    assert r.minority == minority == r.info["minority"]
    assert r.class_names == NAMES and len(r.train) == sum(counts)
    assert list(r.index) == sorted(r.index)
    # the train subset is exactly the source images at the chosen indices
    assert torch.equal(r.train.images, source.train.images[torch.as_tensor(r.index)])
    json.dumps(r.info)


def test_deepsmote_profile_midpoint_minority():
    labels = torch.arange(10).repeat_interleave(4000)
    imgs = torch.zeros(len(labels), 1, 1, 1, dtype=torch.uint8)
    src = Source("m", ImageSet(imgs, labels, list(NAMES)), ImageSet(imgs[:5], labels[:5], list(NAMES)))
    r = apply_recipe(src, "counts", {"counts": "4000,2000,1000,750,500,350,200,100,60,40"}, 0)
    assert r.counts == [4000, 2000, 1000, 750, 500, 350, 200, 100, 60, 40]
    assert r.minority == [5, 6, 7, 8, 9]  # below sqrt(4000 * 40) = 400


def test_determinism(source):
    a = apply_recipe(source, "longtail", {"ir": 10}, seed=7)
    b = apply_recipe(source, "longtail", {"ir": 10}, seed=7)
    c = apply_recipe(source, "longtail", {"ir": 10}, seed=8)
    assert np.array_equal(a.index, b.index) and torch.equal(a.train.images, b.train.images)
    assert a.info == b.info
    assert a.counts == c.counts and not np.array_equal(a.index, c.index)
    for name in ("binary", "intra", "drop-one"):
        x, y = apply_recipe(source, name, {}, seed=1), apply_recipe(source, name, {}, seed=1)
        assert np.array_equal(x.index, y.index) and x.info == y.info


def test_smaller_counts_are_nested_for_one_seed(source):
    lo = apply_recipe(source, "longtail", {"ir": 10}, seed=2)
    hi = apply_recipe(source, "longtail", {"ir": 2}, seed=2)
    assert set(lo.index.tolist()) <= set(hi.index.tolist())


def test_random_class_order(source):
    seen_heads = set()
    for seed in range(6):
        r = apply_recipe(source, "longtail", {"ir": 10, "class_order": "random"}, seed)
        order = r.info["class_order"]
        assert sorted(order) == list(range(C))
        assert [r.counts[c] for c in order] == longtail_counts(60, C, 10)
        assert r.train.class_names == NAMES  # the order never relabels
        seen_heads.add(order[0])
    assert len(seen_heads) > 1 and seen_heads != {0}
    assert apply_recipe(source, "longtail", {"ir": 10}, 0).info["class_order"] == list(range(C))


@pytest.mark.parametrize("name", ["longtail", "step", "drop-one", "counts", "intra"])
def test_test_split_untouched(source, name):
    params = {"counts": {"counts": "6," * 9 + "6"}, "longtail": {"ir": 10}}.get(name, {})
    r = apply_recipe(source, name, params, seed=0)
    assert torch.equal(r.test.images, source.test.images)
    assert torch.equal(r.test.labels, source.test.labels)
    assert r.test.class_names == NAMES


def test_binary(source):
    r = apply_recipe(source, "binary", {}, seed=0)  # positive = last class, ir 10
    assert r.class_names == ["not-c9", "c9"] and r.train.class_names == r.class_names
    assert r.counts == [540, 54] and r.minority == [1]
    assert r.info["positive"] == 9 and r.info["test_counts"] == [180, 20] and r.info["test_ir"] == 9.0
    assert torch.equal(r.test.images, source.test.images)
    assert torch.equal(r.test.labels, (source.test.labels == 9).long())
    src_labels = source.train.labels[torch.as_tensor(r.index)]
    assert torch.equal(r.train.labels, (src_labels == 9).long())
    assert sum(r.info["negatives_per_class"]) == 540 and r.info["negatives_per_class"][9] == 0

    f = apply_recipe(source, "binary", {"positive": "2", "fraction": "0.1"}, seed=0)
    assert f.counts == [540, 60] and f.info["fraction_actual"] == pytest.approx(0.1)
    assert f.class_names == ["not-c2", "c2"] and f.info["test_counts"] == [180, 20]

    capped = apply_recipe(source, "binary", {"ir": 20, "n_max": 200}, seed=0)
    assert capped.counts == [200, 10]
    sub = apply_recipe(source, "binary", {"ir": 3, "n_max": 200}, seed=0)
    assert sub.counts == [180, 60]  # n_neg = min(540, 60 * 3, 200)
    # negatives are a uniform draw from the pooled rest: not stratified by class
    assert len(set(capped.info["negatives_per_class"][:9])) > 1


def test_binary_random_order_picks_last_position(source):
    r = apply_recipe(source, "binary", {"class_order": "random"}, seed=4)
    assert r.info["positive"] == r.info["class_order"][-1]


@pytest.mark.parametrize("fraction, kept", [(0.1, 1), (0.5, 6), (1.0, 12)])
def test_intra_keeps_rare_mode(source, fraction, kept):
    r = apply_recipe(source, "intra", {"fraction": fraction}, seed=0)
    info = r.info
    assert sorted(info["cluster_sizes_before"]) == [12, 48]
    rare = info["rare_cluster"]
    assert info["cluster_sizes_before"][rare] == 12 and info["cluster_sizes_after"][rare] == kept
    assert info["rare_kept"] == kept and r.counts == [48 + kept] + [60] * 9 and r.minority == [0]
    # the rare mode is the bright one, in train and in test
    rare_imgs = r.train.images[info["train_rare_index"]]
    assert len(rare_imgs) == kept and rare_imgs.min() >= 210
    assert info["test_rare_index"] == [16, 17, 18, 19]
    json.dumps(info)


def test_intra_caps_common_modes_at_n_max(source):
    r = apply_recipe(source, "intra", {"n_max": 30, "fraction": 0.5}, seed=0)
    assert r.counts == [36] + [30] * 9


def test_resolve_recipe():
    p = resolve_recipe("longtail", {"ir": "50", "n_max": "100"})
    assert p == {"class_order": "index", "n_max": 100, "ir": 50.0}
    assert type(p["ir"]) is float and type(p["n_max"]) is int
    assert resolve_recipe("longtail", p) == p
    b = resolve_recipe("binary", {"fraction": "0.2"})
    assert b["ir"] == pytest.approx(4.0) and resolve_recipe("binary", b) == b
    assert resolve_recipe("counts", {"counts": " 4, 2 ,1"})["counts"] == "4,2,1"
    assert resolve_recipe("intra", None) == {"class_order": "index", "n_max": 0, "target": 0, "k": 2,
                                             "fraction": 0.1}
    with pytest.raises(UsageError, match="known: class_order, n_max, ir"):
        resolve_recipe("longtail", {"IR": 3})


@pytest.mark.parametrize("name, params, seed, match", [
    ("longtail", {"ir": 0.5}, 0, "ir must be >= 1"),
    ("longtail", {"ir": 100}, 0, r"class 9 \('c9'\) would keep 0 images; use a smaller ir"),
    ("step", {"ir": 100}, 0, "class 5 .* would keep 0 images"),
    ("longtail", {"ir": "ten"}, 0, "ir must be a number"),
    ("longtail", {"n_max": 61}, 0, "n_max 61 is larger than class"),
    ("longtail", {"n_max": -1}, 0, "n_max must be >= 0"),
    ("longtail", {"class_order": "sorted"}, 0, "class_order must be one of"),
    ("longtail", {}, -1, "seed must be a non-negative integer"),
    ("step", {"mu": 1.5}, 0, r"mu must be in \[0, 1\]"),
    ("step", {"mu": -0.1}, 0, r"mu must be in \[0, 1\]"),
    ("drop-one", {"fraction": 0}, 0, r"fraction must be in \(0, 1\]"),
    ("drop-one", {"fraction": 1.5}, 0, r"fraction must be in \(0, 1\]"),
    ("drop-one", {"fraction": 0.01}, 0, "would keep 0 images"),
    ("drop-one", {"target": 10}, 0, "target 10 is out of range"),
    ("drop-one", {"target": "1.5"}, 0, "target must be an integer"),
    ("intra", {"target": 12}, 0, "target 12 is out of range"),
    ("intra", {"k": 1}, 0, "k must be >= 2"),
    ("intra", {"k": 61}, 0, "k 61 is more than"),
    ("binary", {"fraction": 0.6}, 0, r"fraction must be in \(0, 0.5\]"),
    ("binary", {"fraction": 0.1, "ir": 5}, 0, "give ir or fraction, not both"),
    ("binary", {"positive": 10}, 0, "positive 10 is out of range"),
    ("binary", {"positive": -2}, 0, "positive must be a class index or -1"),
    ("binary", {"n_max": 600}, 0, "larger than the 540 negatives"),
    ("binary", {"ir": 50, "n_max": 40}, 0, "would keep 0 images"),
    ("counts", {}, 0, "needs counts="),
    ("counts", {"counts": "6,6,6"}, 0, "3 counts given, source 'synthetic' has 10 classes"),
    ("counts", {"counts": "61,6,6,6,6,6,6,6,6,6"}, 0, r"class 0 \('c0'\) has 60 training images, 61 requested"),
    ("counts", {"counts": "6,0,6,6,6,6,6,6,6,6"}, 0, "position 1 would keep 0 images"),
    ("counts", {"counts": "6,x"}, 0, "integers separated by"),
    ("counts", {"n_max": 6}, 0, "unknown parameter n_max"),
    ("nope", {}, 0, "unknown recipe 'nope'"),
])
def test_impossible_parameters(source, name, params, seed, match):
    with pytest.raises(UsageError, match=match) as e:
        apply_recipe(source, name, params, seed)
    assert "\n" not in str(e.value)


def test_source_with_one_class_is_refused():
    one = ImageSet(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(3), ["a"])
    with pytest.raises(UsageError, match="fewer than 2 classes"):
        apply_recipe(Source("one", one, one), "longtail", {}, 0)


def test_floor_tolerance():
    assert math.floor(0.57 * 100) == 56  # why the recipes floor with a tolerance
    labels = torch.arange(10).repeat_interleave(100)
    imgs = torch.zeros(1000, 1, 1, 1, dtype=torch.uint8)
    src = Source("s", ImageSet(imgs, labels, list(NAMES)), ImageSet(imgs[:5], labels[:5], list(NAMES)))
    assert apply_recipe(src, "drop-one", {"fraction": 0.57}, 0).counts[0] == 57
