"""The detection track end to end: CLI, records, protocol, resume, real layouts, report."""
from __future__ import annotations

import pytest
import torch

from imbench.benchmarks.contract import Method
from imbench.benchmarks.contract.method import METHODS, register_method
from imbench.benchmarks.contract.records import read_records
from imbench.benchmarks.plugins import load_builtins
from imbench.benchmarks.suite import Overrides, expand, load_suite
from imbench.benchmarks.contract.errors import UsageError
from imbench.tasks.detection.track import DetectionTrack

from .test_scene_sources import write_coco, write_voc

SMOKE = ["--profile", "smoke", "--quiet", "--seeds", "0"]
RARE = "rare-class:n_max=40"


def _metrics(out):
    return {r["label"]: r["metrics"] for r in read_records(out)}


def test_detection_run_records_cells_with_coco_metrics(cli, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = cli("run", "detection", "--methods", "erm,rfs,ros", "--recipe", RARE,
                            "--out", out, *SMOKE)
    assert code == 0, err
    assert "detection / digit-scenes / rare-class" in stdout and "| ap |" in stdout.replace(" ap50", "")
    records = {r["method"]: r for r in read_records(out)}
    assert set(records) == {"erm", "rfs", "ros"}
    for r in records.values():
        assert r["status"] == "ok" and r["track"] == "detection" and r["model"] == "fcos"
        assert r["track_info"]["headline"] == "ap" and r["track_info"]["per_class"] == "per_class_ap"
        m = r["metrics"]
        assert 0.0 <= m["ap"] <= 1.0 and len(m["per_class_ap"]) == 10 and m["max_dets"][-1] == 100
        assert {"ap_r", "ap_c", "ap_f"} <= set(m) and "voc07_map50" not in m
        counts = r["class_counts"]
        assert counts["recipe"] == r["data"]["recipe"]["counts"] == r["data"]["recipe"]["reached"]
        assert set(counts["frequency_groups"]) == {"rare", "common", "frequent"}
        assert r["config"]["dataset"]["fingerprint"] == r["data"]["source"]["fingerprint"]
    # one protocol: every method makes erm's optimizer steps, ros too though it enlarged its set
    steps = {m: r["training"]["train_steps"] for m, r in records.items()}
    assert len(set(steps.values())) == 1, steps
    assert records["ros"]["training"]["train_set_size"] > records["erm"]["training"]["train_set_size"]
    assert records["rfs"]["extras"]["rfs_threshold"] > 0


def test_softmax_losses_are_not_offered_on_dense_heads(cli, tmp_path):
    """FCOS's own loss is sigmoid focal (erm there); seesaw is a softmax loss: both run with
    Faster R-CNN only, are left out of the FCOS grid, and named there are refused."""
    fcos = {c["method"]["name"] for c in expand(load_suite("detection"), Overrides()) if c["model"] == "fcos"}
    assert not {"focal", "seesaw"} & fcos
    for name in ("focal", "seesaw"):
        code, _, err = cli("run", "detection", "--methods", name, "--out", tmp_path / name, *SMOKE)
        assert code == 2 and "faster-rcnn" in err, err


def test_detection_cell_is_deterministic_and_resumes_to_the_same_result(cli, tmp_path, monkeypatch):
    args = ["run", "detection", "--methods", "erm,ros", "--recipe", RARE, *SMOKE]
    assert cli(*args, "--out", tmp_path / "full")[0] == 0
    real_run = DetectionTrack.run
    calls = {"n": 0}

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_run(self, *a, **k)

    monkeypatch.setattr(DetectionTrack, "run", interrupted)
    assert cli(*args, "--out", tmp_path / "cut")[0] == 130
    monkeypatch.setattr(DetectionTrack, "run", real_run)
    assert len(read_records(tmp_path / "cut")) == 1
    code, _, err = cli(*args, "--out", tmp_path / "cut", "--resume")
    assert code == 0, err
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "full")


def test_image_size_is_part_of_the_cell_and_only_for_scene_tracks(cli, tmp_path):
    code, _, err = cli("run", "detection", "--methods", "erm", "--recipe", RARE, "--image-size", "48",
                       "--out", tmp_path / "o", *SMOKE)
    assert code == 0, err
    (rec,) = read_records(tmp_path / "o")
    assert rec["config"]["dataset"]["image_size"] == 48 and rec["data"]["source"]["image_size"] == 48
    code, _, err = cli("run", "classification", "--image-size", "48", "--methods", "erm", "--out", tmp_path / "c",
                       *SMOKE)
    assert code == 2 and "--image-size applies to detection" in err


def test_voc_layout_runs_with_natural_imbalance_and_rare_class_selection(cli, tmp_path):
    root = tmp_path / "voc"
    write_voc(root)
    out = tmp_path / "o"
    code, _, err = cli("run", "detection", "--dataset", "voc", "--data-root", root, "--recipe", "natural",
                       "--methods", "erm", "--image-size", "32", "--out", out, *SMOKE)
    assert code == 0, err
    (rec,) = read_records(out)
    assert rec["status"] == "ok" and rec["dataset"] == "voc"
    assert rec["data"]["source"]["split"] == "official" and rec["data"]["source"]["sanitised"]["dropped_empty"] == 1
    assert len(rec["class_counts"]["class_names"]) == 20 and rec["data"]["source"]["class_source"] == "voc20"
    # a set with its own classes, long-tailed by choosing training images
    images = {f"{i:06d}": (32, 32, [(name, 2 + 8 * k, 2 + 8 * k, 9 + 8 * k, 9 + 8 * k, 0, 0)
                                     for k, name in enumerate(names)])
              for i, names in enumerate([["alpha", "beta"], ["alpha"], ["alpha", "gamma"], ["beta"], ["alpha"],
                                         ["gamma", "beta"], ["alpha"], ["beta", "gamma"]])}
    own = tmp_path / "own"
    write_voc(own, images, {"trainval": list(images)[:6], "test": list(images)[6:]})
    code, _, err = cli("run", "detection", "--dataset", "voc", "--data-root", own, "--recipe",
                       "rare-class:n_max=3:ir=3", "--methods", "erm", "--out", tmp_path / "r", *SMOKE)
    assert code == 0, err
    (rec,) = read_records(tmp_path / "r")
    info = rec["data"]["recipe"]
    assert rec["class_counts"]["class_names"] == ["alpha", "beta", "gamma"]
    assert info["mode"] == "selected" and sorted(info["asked"]) == [1, 1, 3]
    assert info["asked"][info["class_order"][0]] == 3  # the head is the first class of the seeded order
    assert all(0 < r <= a for r, a in zip(info["reached"], info["asked"]))


def test_a_real_set_named_without_recipe_runs_its_default_recipe_at_its_own_size(cli, tmp_path):
    root = tmp_path / "voc"
    write_voc(root)
    out = tmp_path / "o"
    code, _, err = cli("run", "detection", "--dataset", "voc", "--data-root", root, "--methods", "erm",
                       "--out", out, *SMOKE)
    assert code == 0, err
    assert "dataset voc takes only natural, rare-class" in err and "it runs natural" in err
    (rec,) = read_records(out)
    assert rec["recipe"]["name"] == "natural" and "image_size" not in rec["config"]["dataset"]
    assert "voc07_map50" in rec["metrics"] and len(rec["metrics"]["voc07_ap50_per_class"]) == 20
    # named explicitly, a recipe the set cannot take stays an error
    code, _, err = cli("run", "detection", "--dataset", "voc", "--data-root", root, "--recipe", "small-objects",
                       "--methods", "erm", "--out", tmp_path / "x", *SMOKE)
    assert code == 2 and "compose scenes" in err


def test_coco_layout_runs(cli, tmp_path):
    root = write_coco(tmp_path / "coco")
    code, _, err = cli("run", "detection", "--dataset", "coco", "--data-root", root, "--recipe", "natural",
                       "--methods", "erm,cb-loss", "--out", tmp_path / "o", *SMOKE)
    assert code == 0, err
    recs = read_records(tmp_path / "o")
    assert {r["status"] for r in recs} == {"ok"} and recs[0]["class_counts"]["class_names"] == ["person", "car", "dog"]


def test_bad_detection_input_is_one_line_exit_2(cli, tmp_path):
    cases = [
        (["--dataset", "voc"], "needs --data-root"),
        (["--dataset", "voc", "--data-root", tmp_path / "missing"], "missing"),
        (["--recipe", "rare-class:ir=0.5"], "ir"),
        (["--recipe", "fg-bg:empty_share=1.5"], "empty_share"),
        (["--model", "fcoss"], "did you mean fcos"),
        (["--methods", "smote"], "supports classification"),
    ]
    for extra, needle in cases:
        code, _, err = cli("run", "detection", *extra, "--out", tmp_path / "x", *SMOKE)
        assert code == 2, (extra, err)
        assert needle in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "x").exists()


def test_ls_lists_detection_datasets_models_and_methods(cli):
    code, stdout, _ = cli("ls", "datasets", "--track", "detection")
    assert code == 0 and {"digit-scenes", "voc", "coco"} <= {line.split()[0] for line in stdout.splitlines()[1:]}
    code, stdout, _ = cli("ls", "models", "--track", "detection")
    assert {"fcos", "retinanet", "faster-rcnn"} <= {line.split()[0] for line in stdout.splitlines()[1:]}
    code, stdout, _ = cli("ls", "methods", "--track", "detection")
    names = {line.split()[0] for line in stdout.splitlines()[1:]}
    assert {"erm", "ros", "rfs", "focal", "seesaw", "cb-loss"} <= names and "smote" not in names
    code, stdout, _ = cli("ls", "recipes", "--track", "detection")
    assert {"rare-class", "small-objects", "occlusion", "fg-bg", "natural"} <= {
        line.split()[0] for line in stdout.splitlines()[1:]}


def test_the_bare_suite_has_the_detection_grid():
    load_builtins()
    cells = expand(load_suite(None), Overrides())
    det = [c for c in cells if c["track"] == "detection"]
    recipes = {c["recipe"]["name"] for c in det}
    assert recipes == {"rare-class"}  # the measured block; small-objects and occlusion run in standard
    assert {c["seed"] for c in det} == {0, 1, 2} and {c["model"] for c in det} == {"fcos"}
    standard = [c for c in expand(load_suite("standard"), Overrides()) if c["track"] == "detection"]
    assert {c["recipe"]["name"] for c in standard} == {"rare-class", "small-objects", "occlusion"}
    assert {c["seed"] for c in standard} == {0, 1, 2, 3, 4}
    methods = {c["method"]["name"] for c in det}
    assert {n for n in METHODS if METHODS.get(n).supports("detection", "fcos")} == methods


def test_standard_small_objects_canvas_keeps_the_digits_resolution():
    """The standard suite runs small-objects on a canvas where its small objects are no smaller
    than the digit pool's own 8 px: on the 64 px default most are shrunk below it, and erm's AP_small stays at its floor even on the balanced set (README, "Small objects")."""
    from imbench.data_recipes.scenes import load_scenes
    from imbench.data_recipes.scenes.recipes import apply_scene_recipe

    load_builtins()
    standard = [c for c in expand(load_suite("standard"), Overrides()) if c["track"] == "detection"]
    sizes = {c["dataset"].get("image_size", 64) for c in standard if c["recipe"]["name"] == "small-objects"}
    assert sizes == {128}
    assert {c["dataset"].get("image_size", 64) for c in standard if c["recipe"]["name"] != "small-objects"} == {64}

    def small_heights(image_size):
        r = apply_scene_recipe(load_scenes("digit-scenes", image_size=image_size), "small-objects",
                               {"n_per_class": 10, "ir": 2}, 0)
        a = (image_size / 8) ** 2
        return [float(b[3] - b[1]) for t in r.train.targets
                for b, area, occ in zip(t["boxes"], t["area"], t["occlusion"]) if area < a and occ == 0]

    # unoccluded objects (an occluder leaves a smaller visible box); on 64 px a narrow digit such
    # as a 1 (9 x 3 px) may reach 8 px in height, most do not
    assert min(small_heights(128)) >= 8 and sorted(small_heights(64))[len(small_heights(64)) // 2] < 8


class _NeedsRoiHead(Method):
    name = "test-needs-roi"
    tracks = ("detection",)
    summary = "a method that only runs with Faster R-CNN"
    reference = "test"
    models = {"detection": ("faster-rcnn",)}


def test_a_method_restricted_to_some_models_is_skipped_by_all_and_refused_by_name():
    if _NeedsRoiHead.name not in METHODS:
        register_method(_NeedsRoiHead, origin="test")
    suite = {"name": "t", "grids": [{"track": "detection", "methods": ["all"], "models": ["fcos", "faster-rcnn"],
                                     "recipes": [{"name": "rare-class"}], "profile": "smoke"}]}
    cells = expand(suite, Overrides())
    assert {c["model"] for c in cells if c["method"]["name"] == "test-needs-roi"} == {"faster-rcnn"}
    with pytest.raises(UsageError, match="does not run with model 'fcos'"):
        expand(suite, Overrides(methods=["test-needs-roi"], models=["fcos"]))


def test_report_covers_both_tracks(cli, tmp_path):
    out = tmp_path / "o"
    assert cli("run", "detection", "--methods", "erm,rfs", "--recipe", RARE, "--out", out, *SMOKE)[0] == 0
    assert cli("run", "classification", "--methods", "erm,focal", "--ir", "10", "--out", out, "--resume",
               *SMOKE)[0] == 0
    code, stdout, err = cli("report", out)
    assert code == 0, err
    tidy = (out / "report" / "results.csv").read_text()
    assert "detection" in tidy and "classification" in tidy and ",ap," in tidy
    html = (out / "report" / "report.html").read_text()
    assert "digit-scenes" in html and "per_class_ap per class" in html and "balanced_accuracy" in html
    plots = {p.name.split("_")[0] for p in (out / "report" / "plots").glob("*.png")}
    assert {"ci-bars", "per-class"} <= plots
    assert (out / "report" / "pivot_detection.csv").exists() and (out / "report" / "pivot_classification.csv").exists()


def _drawing(n: int):
    class Drawing(Method):
        name = f"test-draws-{n}"
        tracks = ("detection",)
        summary = "prepare draws from the global torch stream (as a GAN trained or loaded from a cache does)"
        reference = "test"

        def prepare(self, train, ctx):
            torch.rand(n)
            return train

    return Drawing


def test_global_random_draws_in_prepare_do_not_change_training(tmp_path):
    """A generator cache hit and a miss draw differently from the global stream; Faster R-CNN's
    samplers read it, so the track re-seeds before training (review finding)."""
    from imbench.benchmarks.runner import execute_cell, validate

    metrics = []
    for n in (1, 1000):
        cls = _drawing(n)
        if cls.name not in METHODS:
            register_method(cls, origin="test")
        suite = {"name": "t", "grids": [{"track": "detection", "methods": [cls.name], "models": ["faster-rcnn"],
                                         "recipes": [{"name": "rare-class", "n_max": 30}], "profile": "smoke"}]}
        runtime = {"out": str(tmp_path / str(n)), "device": "cpu"}
        (cell,) = validate(expand(suite, Overrides()), runtime)
        execute_cell(cell, runtime)
        (rec,) = read_records(tmp_path / str(n))
        assert rec["status"] == "ok", rec["error"]
        metrics.append((rec["extras"]["history"], rec["metrics"]))
    assert metrics[0] == metrics[1]  # the training losses too (AP after a smoke epoch is ~0)


def test_a_method_with_nothing_to_do_is_erms_copy_and_no_evidence(cli, tmp_path):
    """On small-objects every class has the same count: ros copies no image, hands the recipe's
    set back, and computes erm's cell -- recorded as identical_to erm, equal metrics, no p-value,
    left out of the rank tests, shown as '(= erm)'."""
    import json
    import math

    from imbench.results.aggregate import tidy

    out = tmp_path / "o"
    code, stdout, err = cli("run", "detection", "--methods", "erm,ros,rfs", "--recipe", "small-objects:n_per_class=10",
                            "--out", out, "--profile", "smoke", "--quiet", "--seeds", "0,1", "--report")
    assert code == 0, err
    records = read_records(out)
    by = {(r["method"], r["seed"]): r for r in records}
    for seed in (0, 1):
        assert by[("ros", seed)]["identical_to"] == "erm"
        assert by[("ros", seed)]["metrics"] == by[("erm", seed)]["metrics"]
        assert by[("erm", seed)]["identical_to"] is None and by[("rfs", seed)]["identical_to"] is None
    table = tidy(records)
    head = table[table["metric"] == "ap"].set_index("method")
    assert head.loc["ros", "identical_to"] == "erm" and math.isnan(head.loc["ros", "p_vs_erm"])
    assert head.loc["rfs", "identical_to"] == ""
    assert "ros (= erm)" in stdout and "not counted in the tests" in stdout
    stats = json.loads((out / "report" / "friedman_detection.json").read_text())
    assert stats["n_methods"] == 2  # erm and rfs; ros's copy of erm is not a third method
    assert 'class="same"' in (out / "report" / "report.html").read_text()
