"""The training budget as an axis: per-step warm-up, --budget-scale, learning curves in the report."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from scipy import stats

from imbench.benchmarks.contract import Context
from imbench.benchmarks.contract.identity import config_hash
from imbench.benchmarks.contract.records import read_records
from imbench.benchmarks.contract import Method
from imbench.tasks.schedule import EpochPlan, learning_rate, train_epochs

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10", "--seeds", "0"]


@pytest.fixture(autouse=True)
def _methods():
    from imbench.benchmarks.plugins import load_methods

    load_methods()


def _lr_trace(budget: dict, n: int, batch_size: int, epochs: int) -> list[float]:
    """The learning rate of every optimizer step of ``train_epochs`` on a one-weight model."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=budget["lr"])
    ctx = Context(track="classification", class_names=["a", "b"], instance_counts=[1, 1], minority=[], seed=0,
                  budget=budget)
    trace = []

    def batch_loss(idx):
        trace.append(opt.param_groups[0]["lr"])
        return model(torch.ones(len(idx), 1)).sum() * 0.0, None, len(idx)

    plan = EpochPlan(epochs, batch_size, "steps", n, n, None)
    train_epochs(model, opt, Method(), ctx, plan, batch_loss)
    return trace


def test_warm_up_is_linear_per_step_as_torchs_linear_lr():
    # 3 epochs of 40 items in batches of 10: 4 steps an epoch; 2 warm-up epochs = 8 steps
    budget = {"lr": 0.1, "epochs": 3, "warmup_epochs": 2, "lr_steps": {}}
    trace = _lr_trace(budget, n=40, batch_size=10, epochs=3)
    # torch's LinearLR from 1/T to 1 over T - 1 steps gives lr (t + 1) / T, t = 0 .. T - 1
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 8, end_factor=1.0, total_iters=7)
    want = []
    for _ in range(12):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert trace == pytest.approx(want, rel=1e-12)
    assert trace[0] == pytest.approx(0.1 / 8) and trace[7] == pytest.approx(0.1) and len(set(trace[:8])) == 8


def test_per_epoch_warm_up_stays_for_ldam_drws_schedule():
    budget = {"lr": 0.1, "epochs": 3, "warmup_epochs": 2, "warmup_unit": "epochs", "lr_steps": {}}
    trace = _lr_trace(budget, n=40, batch_size=10, epochs=3)
    assert trace == pytest.approx([0.05] * 4 + [0.1] * 8)


def test_quick_profiles_warm_up_per_step():
    from imbench.benchmarks.profiles import budget

    for track in ("classification", "detection"):
        b = budget("quick", track)
        assert b["warmup_epochs"] > 0 and b["warmup_unit"] == "steps", track
        # the first step no longer runs at the full rate (it did: a per-epoch warm-up of 1 epoch)
        assert learning_rate(0, b, 0, 25) < b["lr"] / 10
    assert budget("paper", "classification")["warmup_unit"] == "epochs"
    assert "warmup_unit" not in budget("quick", "segmentation")  # no warm-up: the identity is kept


def test_bad_warmup_unit_is_a_usage_error(cli, tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("classification: {epochs: 1, batch_size: 64, lr: 0.05, warmup_epochs: 1, warmup_unit: hours}\n")
    code, _, err = cli("run", "classification", "--methods", "erm", "--profile", str(prof), "--out", tmp_path / "o")
    assert code == 2 and "warmup_unit" in err and not (tmp_path / "o").exists()


def test_budget_scale_multiplies_steps_and_moves_the_schedule_with_it():
    budget = {"lr": 0.1, "epochs": 4, "batch_size": 10, "warmup_epochs": 1, "lr_steps": {3: 0.1}}
    one = _lr_trace(budget, n=40, batch_size=10, epochs=4)
    # scale 2: every epoch twice as long (the plan's per_epoch), the same epochs
    model = torch.nn.Linear(1, 1)
    ctx = Context(track="classification", class_names=["a", "b"], instance_counts=[1, 1], minority=[], seed=0,
                  budget={**budget, "budget_scale": 2.0})
    from imbench.tasks.schedule import epoch_plan

    plan = epoch_plan(list(range(40)), Method(), ctx, reference_size=40)
    assert (plan.epochs, plan.per_epoch, plan.reference_size, plan.steps_per_epoch) == (4, 80, 40, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    two = []

    def batch_loss(idx):
        two.append(opt.param_groups[0]["lr"])
        return model(torch.ones(len(idx), 1)).sum() * 0.0, None, len(idx)

    _, steps, seen = train_epochs(model, opt, Method(), ctx, plan, batch_loss)
    assert (steps, seen, len(one)) == (32, 320, 16)
    # the same fractions of training at the same rates: warm-up over the first quarter, x0.1 in the last
    assert two[::2][4:] == pytest.approx(one[4:]) and two[8:24] == pytest.approx([0.1] * 16)
    assert two[24:] == pytest.approx([0.01] * 8) and two[0] == pytest.approx(0.1 / 8)


def _records(out):
    return {(r["method"], r["config"]["profile"]["budget"].get("budget_scale", 1)): r for r in read_records(out)}


def test_budget_scale_is_a_grid_axis_in_identity_and_labels(cli, tmp_path):
    code, _, _ = cli("run", "classification", "--methods", "erm,ldam-drw", "--budget-scale", "0.5,1,2",
                     "--out", tmp_path / "o", *SMOKE)
    assert code == 0
    recs = _records(tmp_path / "o")
    assert len(recs) == 6
    erm = {s: recs[("erm", s)] for s in (0.5, 1, 2.0)}
    steps = {s: r["training"]["train_steps"] for s, r in erm.items()}
    assert steps[2.0] > steps[1] > steps[0.5] and abs(steps[2.0] - 4 * steps[0.5]) <= 2
    assert erm[2.0]["training"]["budget_scale"] == 2.0 and "budget_scale" not in erm[1]["training"]
    assert erm[2.0]["labels"]["profile"] == "smoke(budget_scale=2)" and erm[1]["labels"]["profile"] == "smoke"
    # DRW defers at the same epoch whatever the scale
    assert recs[("ldam-drw", 0.5)]["extras"]["drw_start_epoch"] == recs[("ldam-drw", 2.0)]["extras"]["drw_start_epoch"]
    # a scale of 1 is the profile's own cell: same identity as a run without the flag
    assert cli("run", "classification", "--methods", "erm", "--out", tmp_path / "p", *SMOKE)[0] == 0
    plain = read_records(tmp_path / "p")[0]
    assert plain["config_hash"] == erm[1]["config_hash"] == config_hash(erm[1]["config"])
    assert plain["metrics"] == erm[1]["metrics"]


@pytest.mark.parametrize("value", ["0", "-1", "x", "nan"])
def test_bad_budget_scale_is_a_usage_error(cli, tmp_path, value):
    code, _, err = cli("run", "classification", "--methods", "erm", "--budget-scale", value,
                       "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and "budget-scale" in err and not (tmp_path / "o").exists()


def test_suite_grid_takes_a_budget_scale_list(tmp_path):
    from imbench.benchmarks.suite import Overrides, expand

    suite = {"grids": [{"track": "classification", "datasets": ["digits"], "recipes": [{"name": "longtail", "ir": 10}],
                        "methods": ["erm"], "budget_scale": [0.25, 1, 4], "seeds": [0], "profile": "smoke"}]}
    cells = expand(suite, Overrides())
    assert [c["profile"]["budget"].get("budget_scale") for c in cells] == [0.25, None, 4.0]
    assert [c["profile"]["budget"].get("budget_scale") for c in expand(suite, Overrides(budget_scale=[2.0]))] == [2.0]


# ----------------------------------------------------------------------------- the analysis


def _tidy(scores: dict[float, dict[str, float]], deltas: bool = True) -> pd.DataFrame:
    rows = []
    for scale, by_method in scores.items():
        for m, v in by_method.items():
            rows.append({"track": "classification", "dataset": "digits", "recipe": "longtail(ir=10)", "model": "m",
                         "profile": "quick" if scale == 1 else f"quick(budget_scale={scale:g})", "method": m,
                         "family": "", "setting": f"{m}{scale}", "block": f"b{scale}", "curve": "c",
                         "budget_scale": scale, "metric": "acc", "mean": v, "std": 0.01, "n_seeds": 3,
                         "ci95_lo": v - 0.02, "ci95_hi": v + 0.02,
                         "delta_vs_erm": v - by_method["erm"] if deltas else math.nan, "identical_to": ""})
    return pd.DataFrame(rows)


CURVE = {  # erm: +50 %, +20 %, +5 %, +1 %, +0.5 %: the plateau is x2 (the doubling after it gains < 2 %)
    0.25: {"erm": 0.40, "a": 0.50, "b": 0.45, "c": 0.30},
    0.5: {"erm": 0.60, "a": 0.65, "b": 0.62, "c": 0.50},
    1.0: {"erm": 0.72, "a": 0.70, "b": 0.74, "c": 0.71},
    2.0: {"erm": 0.756, "a": 0.73, "b": 0.77, "c": 0.76},
    4.0: {"erm": 0.7636, "a": 0.74, "b": 0.78, "c": 0.77},
    8.0: {"erm": 0.767, "a": 0.745, "b": 0.785, "c": 0.775},
}


def test_rank_stability_is_scipys_kendall_tau_against_the_largest_budget():
    from imbench.results.budgets import stability

    table = stability(_tidy(CURVE))
    top = pd.Series(CURVE[8.0])
    for scale, row in table.iterrows():
        want = stats.kendalltau(pd.Series(CURVE[scale]), top)
        assert row["largest scale"] == 8.0 and row["tau vs largest"] == pytest.approx(want.statistic) and row["p (tau)"] == pytest.approx(want.pvalue)
    # a beat erm by 0.10 at x0.25 and loses at x8; c lost and wins
    assert table.loc[0.25, "sign of delta vs erm flips"] == "a (+0.100 -> -0.022); c (-0.100 -> +0.008)"
    assert table.loc[8.0, "sign of delta vs erm flips"] == "" and table.loc[0.5, "erm mean"] == 0.60


def test_budget_rule_picks_the_first_scale_near_the_plateau_with_a_stable_ranking():
    from imbench.results.budgets import budget_rule

    rule = budget_rule(_tidy(CURVE))
    assert rule["plateau_scale"] == 2.0 and rule["plateau_mean"] == pytest.approx(0.756)
    # x0.5: erm at 79 % of the plateau; x1: 95 %, but tau(x1, x2) = 2/3 < 0.7 (erm and c swap)
    assert stats.kendalltau(pd.Series(CURVE[1.0]), pd.Series(CURVE[2.0])).statistic == pytest.approx(2 / 3)
    assert rule["chosen"] == 2.0 and rule["tau_vs_plateau"] == 1.0
    stable = {**CURVE, 1.0: {"erm": 0.72, "a": 0.69, "b": 0.74, "c": 0.73}}
    rule = budget_rule(_tidy(stable))
    assert rule["chosen"] == 1.0 and rule["share_of_plateau"] == pytest.approx(0.72 / 0.756)
    # a floor is not a plateau: flat from x0.25 to x1, rising after
    floor = {s: {**v, "erm": {0.25: 0.10, 0.5: 0.101, 1.0: 0.1005, 2.0: 0.12, 4.0: 0.16, 8.0: 0.161}[s]}
             for s, v in CURVE.items()}
    assert budget_rule(_tidy(floor))["plateau_scale"] == 4.0
    rising = {s: {**v, "erm": 0.1 * s} for s, v in CURVE.items()}
    rule = budget_rule(_tidy(rising))
    assert rule["plateau_scale"] is None and rule["chosen"] is None and "larger scale" in rule["reason"]


def test_report_shows_curves_and_tests_ranks_on_the_largest_budget_only(cli, tmp_path):
    out = tmp_path / "o"
    code, _, _ = cli("run", "classification", "--methods", "erm,ros,focal", "--budget-scale", "0.5,1",
                     "--seeds", "0,1", "--out", out, "--profile", "smoke", "--quiet", "--ir", "10,50", "--report")
    assert code == 0
    rep = out / "report"
    frame = pd.read_csv(rep / "budgets_classification.csv")
    assert sorted(frame["budget_scale"]) == [0.5, 0.5, 1, 1] and frame["curve"].nunique() == 2
    assert (frame.loc[frame["budget_scale"] == 1, "tau vs largest"] == 1).all()
    assert len(list((rep / "plots").glob("metric-vs-budget_*.png"))) == 2
    import json

    fried = json.loads((rep / "friedman_classification.json").read_text())
    assert fried["n_blocks"] == 2  # the two IRs at x1, not four blocks
    html = (rep / "report.html").read_text()
    assert "verdicts against the training budget" in html and "rank stability against the largest budget" in html


def test_gan_steps_is_a_grid_axis_of_the_generative_cells_only():
    from imbench.benchmarks.labels import labels
    from imbench.benchmarks.suite import Overrides, expand

    suite = {"grids": [{"track": "classification", "datasets": ["digits"], "recipes": [{"name": "longtail", "ir": 10}],
                        "methods": ["erm", "bagan", "acgan"], "seeds": [0], "profile": "quick"}]}
    cells = expand(suite, Overrides(gan_steps=[400, 1600]))
    assert [(c["method"]["name"], (c["profile"]["budget"].get("gan") or {}).get("steps")) for c in cells] == [
        ("erm", None), ("bagan", 400), ("bagan", 1600), ("acgan", 400), ("acgan", 1600)]
    # the profile's own generator budget for the method keeps its label (acgan's is 1600 at quick);
    # another one is named
    assert [labels(c)["method"] for c in cells] == ["erm", "bagan", "bagan@gan_steps=1600", "acgan@gan_steps=400",
                                                    "acgan"]


def test_recorded_commands_rebuild_scale_precision_and_gan_steps():
    from imbench.benchmarks.labels import labels
    from imbench.benchmarks.suite import Overrides, expand
    from imbench.results.html import commands_from_records

    suite = {"grids": [{"track": "classification", "datasets": ["digits"], "recipes": [{"name": "longtail", "ir": 10}],
                        "methods": ["cgan"], "seeds": [0], "profile": "quick"}]}
    cells = expand(suite, Overrides(gan_steps=[800], budget_scale=[2.0], precision="bf16"))
    records = [{"config": c, "labels": labels(c), "track": c["track"], "seed": 0, "model": c["model"]} for c in cells]
    (cmd,) = commands_from_records(records)
    assert "--budget-scale 2 --precision bf16 --gan-steps 800" in cmd and "--methods cgan " in cmd


def test_per_method_generator_budgets_and_the_undertrained_flag(tmp_path):
    from imbench.benchmarks.labels import labels
    from imbench.benchmarks.suite import Overrides, expand

    prof = tmp_path / "p.yaml"
    prof.write_text("classification: {epochs: 1, batch_size: 64, lr: 0.05, gan: {steps: 40, batch_size: 16, lr: 2.0e-4, "
                    "feature_epochs: 1, steps_by_method: {cgan: 160}, undertrained: [acgan]}}\n")
    suite = {"grids": [{"track": "classification", "datasets": ["digits"], "recipes": [{"name": "longtail", "ir": 10}],
                        "methods": ["cgan", "acgan", "bagan", "smote+cgan"], "seeds": [0], "profile": str(prof)}]}
    gans = {c["method"]["name"]: c["profile"]["budget"]["gan"] for c in expand(suite, Overrides())}
    assert {m: g["steps"] for m, g in gans.items()} == {"cgan": 160, "acgan": 40, "bagan": 40, "smote+cgan": 160}
    assert [m for m, g in gans.items() if g.get("undertrained")] == ["acgan"]
    assert all("steps_by_method" not in g and "undertrained" not in g or g["undertrained"] is True for g in gans.values())
    # --gan-steps names the budget outright: no per-method steps, no measured flag
    forced = expand(suite, Overrides(gan_steps=[80]))
    assert {c["profile"]["budget"]["gan"]["steps"] for c in forced} == {80}
    assert not any(c["profile"]["budget"]["gan"].get("undertrained") for c in forced)


def test_leaderboard_marks_an_undertrained_generator(cli, tmp_path):
    from imbench.results.leaderboard import format_table, leaderboard

    prof = tmp_path / "p.yaml"
    prof.write_text("classification: {epochs: 1, batch_size: 64, lr: 0.05, gan: {steps: 30, batch_size: 32, lr: 2.0e-4, "
                    "feature_epochs: 1, undertrained: [cvae]}}\n")
    out = tmp_path / "o"
    assert cli("run", "classification", "--methods", "erm,cvae", "--profile", prof, "--seeds", "0", "--ir", "10",
               "--quiet", "--out", out)[0] == 0
    board = leaderboard(read_records(out))
    assert board.set_index("method")["undertrained"].to_dict() == {"erm": False, "cvae": True}
    text = format_table(board)
    assert "| cvae (under-trained generator) |" in text and "judges an under-trained generator" in text


def test_skip_undertrained_leaves_out_the_generators_the_profile_lists_unless_named():
    from imbench.benchmarks.suite import Overrides, expand, load_suite

    grid = {"track": "classification", "datasets": ["digits"], "recipes": [{"name": "longtail", "ir": 10}],
            "methods": ["erm", "acgan", "cgan", "wgan-gp"], "seeds": [0], "profile": "quick",
            "skip_undertrained": True}
    notes: list[str] = []
    cells = expand({"grids": [grid]}, Overrides(), notes)
    assert [c["method"]["name"] for c in cells] == ["erm", "acgan"]  # cgan and wgan-gp: under-trained at quick
    assert len(notes) == 1 and "left out cgan, wgan-gp" in notes[0]
    named = expand({"grids": [grid]}, Overrides(methods=["cgan"]))
    assert [c["method"]["name"] for c in named] == ["cgan"] and named[0]["profile"]["budget"]["gan"]["undertrained"]
    forced = expand({"grids": [grid]}, Overrides(gan_steps=[6400]))
    assert [c["method"]["name"] for c in forced] == ["erm", "acgan", "cgan", "wgan-gp"]
    # the bare suite runs no row that judges an under-trained generator; standard runs every method
    bare = [c for c in expand(load_suite(None), Overrides()) if c["track"] == "classification"]
    assert not any((c["profile"]["budget"].get("gan") or {}).get("undertrained") for c in bare)
    standard = {c["method"]["name"] for c in expand(load_suite("standard"), Overrides())
                if c["track"] == "classification"}
    assert {"cgan", "cyclegan", "dcgan", "wgan-gp"} <= standard


def test_quick_detection_and_segmentation_budgets_are_the_curves_x4():
    """quick's detection and segmentation budgets are 4x the `curves` base (the budget rule's pick),
    with the warm-up and the lr step at the same fractions of training."""
    from imbench.benchmarks.profiles import budget

    for track in ("detection", "segmentation"):
        base, quick = budget("curves", track), budget("quick", track)
        assert quick["epochs"] == 4 * base["epochs"]
        assert quick.get("warmup_epochs", 0) == 4 * base.get("warmup_epochs", 0)
        assert {4 * k: v for k, v in base["lr_steps"].items()} == quick["lr_steps"]
        assert {k: v for k, v in quick.items() if k not in ("epochs", "warmup_epochs", "lr_steps")} == \
            {k: v for k, v in base.items() if k not in ("epochs", "warmup_epochs", "lr_steps")}
    assert budget("curves", "classification") == budget("quick", "classification")
