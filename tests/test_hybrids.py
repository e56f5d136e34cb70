"""Hybrid methods: a data-level part then an algorithm-level part, as one composite method."""
from __future__ import annotations

import pytest
import torch

from imbench.benchmarks.composite import split_parts
from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.contract.identity import config_hash
from imbench.benchmarks.plugins import load_methods, method_class
from imbench.benchmarks.contract.records import read_records
from imbench.benchmarks.suite import Overrides, expand
from imbench.testing import check_method, tiny_context, tiny_imageset

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10"]


@pytest.fixture(autouse=True, scope="module")
def _methods():
    load_methods()


def test_split_keeps_numbers_with_exponents():
    assert split_parts("smote:k_neighbors=3+ldam-drw:s=1e+1") == ["smote:k_neighbors=3", "ldam-drw:s=1e+1"]


def test_hybrid_runs_and_is_recorded_as_one_method(cli, tmp_path):
    code, stdout, err = cli("run", "classification", "--methods", "erm,smote+ldam-drw,ros+focal:gamma=1", "--seeds", "0",
                            "--out", tmp_path / "o", *SMOKE)
    assert code == 0, err
    r = {x["method"]: x for x in read_records(tmp_path / "o")}
    h = r["smote+ldam-drw"]
    assert h["status"] == "ok" and h["method_family"] == "hybrid"
    assert h["method_hooks"] == ["prepare", "criterion", "adapt_model", "on_epoch"]
    assert set(h["method_params"]) == {"smote", "ldam-drw"} and h["method_params"]["ldam-drw"]["max_m"] == 0.5
    assert set(h["class_counts"]["trained_on"]) == {max(h["class_counts"]["recipe"])}
    assert h["extras"]["drw_start_epoch"] == 1  # the ldam-drw part's schedule ran (0.8 * 2 epochs)
    assert r["ros+focal"]["labels"]["method"] == "ros+focal:gamma=1" and r["ros+focal"]["method_params"]["focal"]["gamma"] == 1.0
    assert "| smote+ldam-drw |" in stdout and "| ros+focal:gamma=1 |" in stdout


@pytest.mark.parametrize("spec, clash", [("focal+class-weighted", "criterion"), ("ldam-drw+cb-loss", "criterion")])
def test_two_parts_claiming_one_exclusive_hook_is_exit_2(cli, tmp_path, spec, clash):
    code, _, err = cli("run", "classification", "--methods", spec, "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and err.count("\n") == 1
    a, b = spec.split("+")
    assert a in err and b in err and clash in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("spec, message", [("ros+ros", "twice"), ("ros+nope", "unknown method 'nope'"),
                                           ("ros:k=1+focal", "no parameter 'k'")])
def test_bad_hybrids_are_usage_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        expand({"name": "t", "grids": [{"track": "classification", "recipes": [{"name": "longtail", "ir": 10}],
                                        "methods": [spec], "profile": "smoke"}]}, Overrides())


def test_yaml_mapping_and_command_line_spec_are_one_cell():
    def cell(entry):
        grid = {"track": "classification", "recipes": [{"name": "longtail", "ir": 10}], "methods": [entry],
                "profile": "smoke"}
        return expand({"name": "t", "grids": [grid]}, Overrides())[0]

    a = cell("smote:k_neighbors=3+ldam-drw:max_m=0.3")
    b = cell({"name": "smote+ldam-drw", "smote": {"k_neighbors": 3}, "ldam-drw": {"max_m": 0.3}})
    assert config_hash(a) == config_hash(b)
    assert a["method"]["params"]["smote"]["k_neighbors"] == 3


def test_blend_reaches_a_generative_part_and_gives_it_the_gan_budget():
    grid = {"track": "classification", "recipes": [{"name": "longtail", "ir": 10}],
            "methods": ["deepsmote+class-weighted"], "profile": "smoke"}
    (cell,) = expand({"name": "t", "grids": [grid]}, Overrides(blend="0.5"))
    assert cell["method"]["params"]["deepsmote"]["blend"] == "0.5"
    assert "gan" in cell["profile"]["budget"]


def test_data_part_makes_the_same_set_as_alone():
    train = tiny_imageset()
    alone = method_class("smote")().prepare(train, tiny_context(train))
    hybrid = method_class("smote+ldam-drw")().prepare(train, tiny_context(train))
    assert torch.equal(alone.images, hybrid.images) and torch.equal(alone.labels, hybrid.labels)


def test_loss_part_sees_the_counts_of_the_set_it_trains_on():
    train = tiny_imageset(counts=(24, 8, 3))
    ctx = tiny_context(train)
    hybrid = method_class("ros+class-weighted")()
    prepared = hybrid.prepare(train, ctx)
    assert prepared.counts() == [24, 24, 24]
    loss = hybrid.criterion(ctx)
    alone = method_class("class-weighted")().criterion(tiny_context(train))
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    # a balanced set: uniform weights, i.e. plain cross-entropy; alone, the recipe's counts weight it
    assert torch.allclose(loss(logits, y), torch.nn.functional.cross_entropy(logits, y))
    assert not torch.allclose(alone(logits, y), torch.nn.functional.cross_entropy(logits, y))
    assert ctx.instance_counts == [24, 8, 3]  # the cell's context itself is untouched
    assert ctx.record["hybrid_part_counts"] == {"ros": [24, 8, 3], "class-weighted": [24, 24, 24]}


@pytest.mark.parametrize("spec", ["smote+ldam-drw", "ros+focal", "rus+random-erasing"])
def test_hybrids_pass_the_method_contract(spec):
    check_method(method_class(spec))


def test_generative_hybrid_passes_the_method_contract():
    check_method(method_class("deepsmote+class-weighted"))
