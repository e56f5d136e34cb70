"""The runner end to end: records, determinism, resume, failures, the leaderboard, real MNIST."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from imbench.benchmarks.contract.records import read_records

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10"]
REQUIRED = {"status", "error", "config", "config_hash", "method", "dataset", "recipe", "seed", "class_counts",
            "metrics", "timings", "versions", "git", "device", "model", "profile"}


def _metrics(out):
    return {r["config_hash"]: r["metrics"] for r in read_records(out)}


def test_small_suite_writes_records_and_leaderboard(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = cli("run", "classification", "--methods", "erm,ros,cb-loss:beta=0.99", "--seeds", "0,1",
                          "--out", out, *SMOKE)
    assert code == 0
    records = read_records(out)
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    for r in records:
        assert REQUIRED <= set(r)
        assert r["device"] == "cpu" and r["dataset"] == "digits" and r["profile"] == "smoke"
        assert sum(r["class_counts"]["recipe"]) > 0 and len(r["class_counts"]["recipe"]) == 10
        assert 0.0 <= r["metrics"]["balanced_accuracy"] <= 1.0
        assert set(r["timings"]) >= {"prepare_s", "train_s", "evaluate_s", "total_s"}
        assert r["data"]["source"]["split"]["kind"] == "stratified"
    cb = [r for r in records if r["method"] == "cb-loss"]
    assert all(r["method_params"]["beta"] == 0.99 for r in cb)
    ros = [r for r in records if r["method"] == "ros"][0]
    assert set(ros["class_counts"]["trained_on"]) == {max(ros["class_counts"]["recipe"])}
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board["method"]) == ["cb-loss:beta=0.99", "erm", "ros"]
    assert (board["n_seeds"] == 2).all()
    erm = [r["metrics"]["balanced_accuracy"] for r in records if r["method"] == "erm"]
    row = board[board["method"] == "erm"].iloc[0]
    assert row["balanced_accuracy_mean"] == pytest.approx(sum(erm) / 2, abs=1e-6)
    assert row["balanced_accuracy_delta_erm"] == pytest.approx(0.0)
    assert "leaderboard.csv" in stdout and "| erm |" in stdout.replace("| 1 | erm", "| erm").replace("| 2 | erm", "| erm").replace("| 3 | erm", "| erm")


def test_same_cell_twice_gives_identical_metrics(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("run", "classification", "--methods", "smote,focal", "--seeds", "3", "--out", tmp_path / name, *SMOKE)[0] == 0
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 2
    assert a == b


def test_existing_records_need_resume(cli, tmp_path):
    args = ["run", "classification", "--methods", "erm", "--seeds", "0", "--out", tmp_path / "o", *SMOKE]
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 2 and "--resume" in err
    code, _, err = cli(*args, "--resume")
    assert code == 0


def test_interrupted_suite_resumes_to_the_uninterrupted_result(cli, tmp_path, monkeypatch):
    from imbench.tasks.classification.track import ClassificationTrack

    args = ["run", "classification", "--methods", "erm,class-weighted", "--seeds", "0,1", *SMOKE]
    assert cli(*args, "--out", tmp_path / "full")[0] == 0

    real_run = ClassificationTrack.run
    calls = {"n": 0}

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_run(self, *a, **k)

    monkeypatch.setattr(ClassificationTrack, "run", interrupted)
    code, _, err = cli(*args, "--out", tmp_path / "part")
    assert code == 130 and "--resume" in err
    assert len(read_records(tmp_path / "part")) == 2
    assert not list((tmp_path / "part" / "records").glob(".tmp-*"))
    monkeypatch.setattr(ClassificationTrack, "run", real_run)
    assert cli(*args, "--out", tmp_path / "part", "--resume")[0] == 0
    assert _metrics(tmp_path / "part") == _metrics(tmp_path / "full")


def test_failing_method_is_recorded_and_the_suite_goes_on(cli, tmp_path):
    code, _, err = cli("run", "classification", "--methods", "erm,nan-loss", "--plugin", "tests.plugin_fixtures:NanLoss",
                       "--seeds", "0", "--out", tmp_path / "o", *SMOKE)
    assert code == 1
    records = {r["method"]: r for r in read_records(tmp_path / "o")}
    assert records["erm"]["status"] == "ok"
    assert records["nan-loss"]["status"] == "failed"
    assert records["nan-loss"]["error"].startswith("DivergenceError")
    assert "1 cell(s) failed" in err and "nan-loss" in err
    board = pd.read_csv(tmp_path / "o" / "leaderboard.csv")
    assert board.set_index("method").loc["nan-loss", "n_failed"] == 1


def test_process_pool_runs_every_cell(cli, tmp_path):
    code, _, _ = cli("run", "classification", "--methods", "erm,rus", "--seeds", "0", "--jobs", "2", "--out", tmp_path / "o", *SMOKE)
    assert code == 0
    records = read_records(tmp_path / "o")
    assert sorted(r["method"] for r in records) == ["erm", "rus"]
    assert all(r["status"] == "ok" and r["threads"] == 1 for r in records)


def test_process_pool_workers_load_plugins_and_share_one_generator_cache(cli, tmp_path):
    # the default --jobs auto is a pool: --plugin methods and cached generators must work in it
    code, _, err = cli("run", "classification", "--methods", "halve,deepsmote,deepsmote:blend=0.5",
                       "--plugin", "tests.plugin_fixtures:Halve",
                       "--seeds", "0", "--jobs", "2", "--out", tmp_path / "o", *SMOKE)
    assert code == 0, err
    records = read_records(tmp_path / "o")
    assert sorted(r["method"] for r in records) == ["deepsmote", "deepsmote", "halve"]
    caches = sorted(r["extras"]["generator_cache"] for r in records if r["method"] == "deepsmote")
    assert caches == ["hit", "miss"]  # both blends need one generator: trained once, loaded once


def test_auto_jobs_is_one_worker_per_core_on_cpu_and_one_on_cuda(monkeypatch):
    from imbench.benchmarks.executors import resolve_jobs

    assert resolve_jobs("auto", device="cpu", cells=120, cores=2) == 2
    assert resolve_jobs("auto", device="cpu", cells=3, cores=16) == 3
    assert resolve_jobs("auto", device="cpu", cells=1, cores=8) == 1
    assert resolve_jobs("auto", device="cuda", cells=120, cores=16) == 1
    assert resolve_jobs("4", device="cuda", cells=2, cores=2) == 4
    monkeypatch.setenv("IMBENCH_JOBS", "3")
    assert resolve_jobs(None, device="cpu", cells=120, cores=2) == 3
    monkeypatch.delenv("IMBENCH_JOBS")
    assert resolve_jobs(None, device="cpu", cells=120, cores=2) == 2


def test_every_cpu_cell_computes_with_one_thread_whatever_jobs_says(cli, tmp_path, monkeypatch):
    """A cell's numbers depend on the thread count; a lone cell run in this process (auto with one
    cell, or --jobs 1) must get the one thread a pool worker gets, or the same cell differs between
    a 1-cell and a many-cell run, or between --jobs 1 and auto. --threads N asks for more."""
    import torch

    monkeypatch.delenv("IMBENCH_JOBS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        args = ("run", "classification", "--methods", "erm", "--seeds", "0", *SMOKE)
        assert cli(*args, "--out", tmp_path / "auto")[0] == 0
        assert torch.get_num_threads() == 2  # restored after the run
        assert cli(*args, "--jobs", "1", "--out", tmp_path / "one")[0] == 0
        assert cli(*args, "--jobs", "1", "--threads", "2", "--out", tmp_path / "two")[0] == 0
    finally:
        torch.set_num_threads(before)
    (auto,), (one,), (two,) = (read_records(tmp_path / d) for d in ("auto", "one", "two"))
    assert auto["threads"] == 1 and one["threads"] == 1 and two["threads"] == 2
    assert auto["metrics"]["balanced_accuracy"] == one["metrics"]["balanced_accuracy"]


@pytest.mark.parametrize("bad", [("--threads", "0"), ("--threads", "2", "--executor", "ray")])
def test_bad_threads_is_a_usage_error(cli, tmp_path, bad):
    code, _, err = cli("run", "classification", "--methods", "erm", *bad, "--out", tmp_path / "x")
    assert code == 2 and "--threads" in err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_bad_jobs_is_a_usage_error(cli, tmp_path, bad):
    code, _, err = cli("run", "classification", "--methods", "erm", "--seeds", "0", "--jobs", bad, "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and "--jobs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_real_mnist_test_split_runs(cli, tmp_path, shared_data):
    code, _, _ = cli("run", "classification", "--dataset", "mnist", "--data-root", shared_data, "--methods", "erm",
                     "--seeds", "0", "--out", tmp_path / "o", "--profile", "smoke", "--quiet", "--ir", "100")
    assert code == 0
    (record,) = read_records(tmp_path / "o")
    assert record["status"] == "ok"
    assert record["data"]["source"]["split"] == {"kind": "stratified", "seed": 0, "test_fraction": 0.2}
    counts = record["class_counts"]["recipe"]
    assert counts[0] == min(record["data"]["source"]["class_counts"]["train"])
    assert counts[-1] == int(counts[0] * 0.01)
    assert sum(record["class_counts"]["test"]) == 2000
    assert math.isfinite(record["metrics"]["balanced_accuracy"])
    json.dumps(record)


def test_run_with_progress_and_resume_messages(cli, tmp_path):
    # the default (not --quiet) path: progress bars, the suite line, the resume summary
    args = ["run", "classification", "--methods", "erm", "--profile", "smoke", "--ir", "10", "--out", tmp_path / "o"]
    code, _, err = cli(*args, "--seeds", "0")
    assert code == 0, err
    assert "imbench: suite quick-classification: 1 cells on cpu" in err
    code, stdout, err = cli(*args, "--seeds", "0,1", "--resume")
    assert code == 0, err
    assert "resuming: 1 cell(s) already recorded (0 failed, not retried), 0 failed cell(s) retried, 1 to run" in err
    assert "2 cells, 1 run now, 1 resumed" in stdout
