"""The validation split (``validation: F``): what is carved, that a validation cell trains without it
and is evaluated on it instead of the test split, and that it is part of the cell."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from imbench.benchmarks.contract import Method
from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.labels import labels
from imbench.benchmarks.plugins import load_methods
from imbench.benchmarks.suite import Overrides, expand
from imbench.data_recipes.recipes import apply_recipe
from imbench.data_recipes.scenes.recipes import apply_scene_recipe
from imbench.data_recipes.sources import load_source
from imbench.data_recipes.validation import carve, strata
from imbench.testing import run_smoke_cell

load_methods()


@pytest.fixture(scope="module")
def longtail():
    return apply_recipe(load_source("digits"), "longtail", {"ir": 50}, 0)


def test_carve_counts_per_class_follow_the_rule(longtail):
    out = carve(longtail, 0.2, seed=0)
    full = np.asarray(longtail.counts)
    val = np.asarray(out.test.counts())
    expected = np.where(full >= 2, np.minimum(full - 1, np.maximum(1, np.rint(0.2 * full))), 0)
    assert val.tolist() == expected.astype(int).tolist()
    assert (np.asarray(out.train.counts()) + val).tolist() == full.tolist()
    assert out.counts == out.train.counts()
    info = out.info["validation"]
    assert (info["n_train"], info["n_val"]) == (len(out.train), len(out.test))
    assert info["val_counts"] == val.tolist() and info["fraction"] == 0.2 and info["seed"] == 0


def test_carve_is_a_partition_seeded_and_independent_of_the_test_split(longtail):
    a, b, c = carve(longtail, 0.2, 0), carve(longtail, 0.2, 0), carve(longtail, 0.2, 1)
    images = longtail.train.images.reshape(len(longtail.train), -1)

    def rows(s):
        return {bytes(r.numpy()) for r in s.images.reshape(len(s), -1)}

    assert rows(a.train) | rows(a.test) == {bytes(r.numpy()) for r in images}
    assert not rows(a.train) & rows(a.test)
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.test.images, c.test.images)
    assert not rows(a.test) & rows(longtail.test)  # the carved split holds no test image
    assert np.isin(a.index, longtail.index).all() and len(a.index) == len(a.train)


def test_scene_strata_put_each_image_under_its_rarest_class():
    imb = apply_scene_recipe(load_source_scenes(), "rare-class", {"ir": 10, "n_max": 40}, 0)
    keys = strata(imb.train, imb.counts)
    counts = np.asarray(imb.counts)
    for key, target in zip(keys, imb.train.targets):
        present = target["labels"].unique().numpy()
        assert key == (present[np.argmin(counts[present])] if len(present) else -1)
    out = carve(imb, 0.2, 0)
    assert len(out.train) + len(out.test) == len(imb.train)
    # every class whose stratum has two images or more is validated on
    for cls in set(keys.tolist()) - {-1}:
        if (keys == cls).sum() >= 2:
            assert out.test.instance_counts()[cls] > 0


def load_source_scenes():
    from imbench.data_recipes.scenes import load_scenes

    return load_scenes("digit-scenes")


def test_validation_is_part_of_the_cell_and_its_label():
    suite = {"name": "t", "grids": [{"track": "classification", "datasets": ["digits"],
                                     "recipes": [{"name": "longtail", "ir": 10}], "methods": ["erm"],
                                     "seeds": [0], "profile": "smoke"}]}
    (plain,) = expand(suite, Overrides())
    (held,) = expand(suite, Overrides(validation=0.2))
    assert "validation" not in plain["dataset"] and held["dataset"]["validation"] == 0.2
    assert labels(held)["dataset"] == "digits(validation=0.2)"
    (zero,) = expand(suite, Overrides(validation=0.0))
    assert zero == plain
    for bad in (1.0, -0.1):
        with pytest.raises(UsageError, match="validation"):
            expand(suite, Overrides(validation=bad))


class SeesSplits(Method):
    """Notes what the hooks see of the validation and test splits."""

    name = "sees-splits"
    tracks = ("classification", "detection", "segmentation")
    summary = "test fixture"
    reference = "test fixture"

    def prepare(self, train, ctx):
        ctx.note("splits", {"val": None if ctx.val is None else len(ctx.val),
                            "val_is_test": ctx.val is not None and ctx.val is ctx.test,
                            "train": len(train)})
        return train


@pytest.mark.parametrize("track", ["classification", "detection", "segmentation"])
def test_a_validation_cell_trains_without_the_carved_split_and_is_evaluated_on_it(tmp_path, track):
    plain = run_smoke_cell(SeesSplits, tmp_path / "a", track=track)
    held = run_smoke_cell(SeesSplits, tmp_path / "b", track=track, grid={"validation": 0.25})
    info = held["data"]["recipe"]["validation"]
    seen = held["extras"]["splits"]
    assert plain["extras"]["splits"]["val"] is None
    assert seen == {"val": info["n_val"], "val_is_test": True, "train": info["n_train"]}
    assert seen["train"] + seen["val"] == plain["extras"]["splits"]["train"]
    # evaluated on the carved images: its "test" counts are the validation split's
    assert held["class_counts"]["test"] == info["val_counts"]
    assert held["class_counts"]["test"] != plain["class_counts"]["test"]
    assert held["config_hash"] != plain["config_hash"]


@pytest.mark.parametrize("value", ["0.1,0.2", "abc", "1", "-0.5"])
def test_bad_validation_is_one_line_and_exit_2(cli, tmp_path, value):
    code, _, err = cli("run", "classification", "--methods", "erm", "--validation", value,
                       "--profile", "smoke", "--out", tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "validation" in err
    assert not (tmp_path / "r").exists()


def test_budgets_variants_are_a_grid_axis_with_their_settings_in_the_budget_and_the_label():
    grid = {"track": "segmentation", "datasets": ["digit-scenes"], "recipes": [{"name": "rare-pixels", "ir": 10}],
            "methods": ["erm"], "models": ["unet"], "image_size": 32, "seeds": [0], "profile": "quick"}
    (plain,) = expand({"name": "t", "grids": [grid]}, Overrides())
    same, sgd = expand({"name": "t", "grids": [{**grid, "budgets": [{}, {"optimizer": "sgd", "lr": "1e-1"}]}]},
                       Overrides())
    assert same == plain  # the empty variant is the profile as it is: the same cell
    budget = sgd["profile"]["budget"]
    assert budget["optimizer"] == "sgd" and budget["lr"] == 0.1  # coerced as a profile's own value
    assert {k: v for k, v in budget.items() if k not in ("optimizer", "lr")} == \
        {k: v for k, v in plain["profile"]["budget"].items() if k not in ("optimizer", "lr")}
    assert labels(sgd)["profile"] == "quick(optimizer=sgd,lr=0.1)" and labels(plain)["profile"] == "quick"
    for bad in ({"epochs": 3}, {"optimizer": "lbfgs"}, [1]):
        with pytest.raises(UsageError, match="budgets|optimizer"):
            expand({"name": "t", "grids": [{**grid, "budgets": bad}]}, Overrides())


def test_a_budgets_variant_trains_with_its_optimizer(tmp_path):
    rec = run_smoke_cell("erm", tmp_path, track="segmentation",
                         grid={"budgets": [{"optimizer": "sgd", "lr": 0.05, "momentum": 0.5}]})
    assert rec["status"] == "ok" and rec["labels"]["profile"] == "smoke(optimizer=sgd,lr=0.05,momentum=0.5)"
    assert rec["config"]["profile"]["budget"]["optimizer"] == "sgd"
    from imbench.tasks.schedule import sgd

    opt = sgd([torch.zeros(1, requires_grad=True)], rec["config"]["profile"]["budget"])  # what the loop builds
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.5 and opt.defaults["lr"] == 0.05
