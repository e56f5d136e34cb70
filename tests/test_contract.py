"""The shared contract checks on every registered method, plus one real cell each."""
from __future__ import annotations

import pytest

from imbench.benchmarks.plugins import METHODS, load_methods
from imbench.testing import check_method, run_smoke_cell

load_methods()
BUILTINS = sorted(n for n in METHODS if METHODS.origin(n) == "builtin")


@pytest.mark.parametrize("name", BUILTINS)
def test_method_contract(name):
    check_method(METHODS.get(name))


@pytest.mark.parametrize("name", [n for n in BUILTINS if METHODS.get(n).supports("classification")])
def test_method_runs_a_real_cell(name, tmp_path):
    record = run_smoke_cell(name, tmp_path)
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["balanced_accuracy"] > 0.1
    assert record["method_hooks"] == METHODS.get(name).hooks()


@pytest.mark.parametrize("name", [n for n in BUILTINS if METHODS.get(n).supports("detection")])
def test_method_runs_a_real_detection_cell(name, tmp_path):
    record = run_smoke_cell(name, tmp_path, track="detection", recipe_params={"n_max": 60})
    assert record["status"] == "ok", record["error"]
    assert record["track"] == "detection" and record["metrics"]["ap"] is not None
    assert record["track_info"]["headline"] == "ap" and len(record["metrics"]["per_class_ap"]) == 10
    assert record["class_counts"]["recipe"] == record["data"]["recipe"]["counts"]


@pytest.mark.parametrize("name", [n for n in BUILTINS if METHODS.get(n).supports("segmentation")])
def test_method_runs_a_real_segmentation_cell(name, tmp_path):
    record = run_smoke_cell(name, tmp_path, track="segmentation", recipe_params={"n_max": 60})
    assert record["status"] == "ok", record["error"]
    assert record["track"] == "segmentation" and record["metrics"]["miou"] is not None
    assert record["method_hooks"] == METHODS.get(name).hooks()
