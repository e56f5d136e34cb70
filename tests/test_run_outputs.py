"""What a run writes and says: one meaning per output file, the default --out, the report's list
of files, the statistics it does not compute, devices."""
from __future__ import annotations

import json
import os

import pytest

from imbench.benchmarks.cli import build_parser, default_out
from imbench.benchmarks.suite import load_suite

SMOKE = ["--profile", "smoke", "--quiet", "--seeds", "0"]


def test_run_leaderboard_and_report_leaderboard_cover_the_same_records(cli, tmp_path):
    out = tmp_path / "o"
    assert cli("run", "classification", "--methods", "erm", "--ir", "10,20", "--out", out, *SMOKE)[0] == 0
    code, stdout, err = cli("run", "classification", "--methods", "erm,focal", "--ir", "10,20", "--out", out,
                            "--resume", "--report", *SMOKE)
    assert code == 0, err
    assert (out / "leaderboard.md").read_text() == (out / "report" / "leaderboard.md").read_text()
    assert "focal" in (out / "leaderboard.md").read_text() and "4 records in all" in stdout


def test_two_blocks_get_ranks_but_no_friedman_statistic_and_one_method_blocks_no_bar_plot(cli, tmp_path):
    out = tmp_path / "o"
    assert cli("run", "classification", "--methods", "erm,focal", "--ir", "10,20", "--out", out, *SMOKE)[0] == 0
    assert cli("run", "classification", "--methods", "ros", "--recipe", "step", "--ir", "10", "--out", out,
               *SMOKE)[0] == 0
    code, stdout, _ = cli("report", out, "--out", tmp_path / "rep")
    assert code == 0
    stats = json.loads((tmp_path / "rep" / "friedman_classification.json").read_text())
    assert "needs >= 3 blocks" in stats["reason"] and stats.get("friedman") is None
    assert "inf" not in (tmp_path / "rep" / "report.html").read_text().lower().split("friedman", 1)[1][:2000]
    bars = sorted(p.name for p in (tmp_path / "rep" / "plots").glob("ci-bars_*.png"))
    assert len(bars) == 2 and not any("step" in name for name in bars)  # step's block has ros alone
    assert "plots/" in stdout and "plot files" in stdout


def test_out_names_the_profile_when_it_is_not_the_suites():
    suite = load_suite("classification")
    assert default_out(suite, None).as_posix() == "runs/quick-classification"
    assert default_out(suite, "quick").as_posix() == "runs/quick-classification"
    assert default_out(suite, "smoke").as_posix() == "runs/quick-classification-smoke"
    assert default_out(suite, "my/budgets.yaml").as_posix() == "runs/quick-classification-budgets"


def test_devices_cuda_n_and_mps_are_understood(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the messages below are the CPU machine's")
    for device, needle in (("cuda:1", "no CUDA device"), ("mps", "no MPS device")):
        code, _, err = cli("run", "classification", "--device", device, "--out", tmp_path / "o", *SMOKE)
        assert code == 2 and needle in err, err
    assert build_parser().parse_args(["run", "--device", "cuda:3"]).device == "cuda:3"
    assert not os.path.exists(tmp_path / "o")
