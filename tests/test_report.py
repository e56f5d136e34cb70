"""imbench report: merged run directories, failed and missing cells, tables, statistics, HTML."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from imbench.benchmarks.contract.records import read_records

SMOKE = ["--profile", "smoke", "--quiet", "--seeds", "0"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two run directories of one grid (ir 10 and ir 20, 3 methods), one failed cell, one missing."""
    from imbench.benchmarks.cli import main

    root = tmp_path_factory.mktemp("runs")
    args = ["run", "classification", "--methods", "erm,focal,flaky", "--plugin", "tests.plugin_fixtures:Flaky", *SMOKE]
    assert main([*args, "--ir", "10", "--out", str(root / "a")]) == 0
    import os

    os.environ["IMBENCH_TEST_FLAKY"] = "1"
    try:
        assert main([*args, "--ir", "20", "--out", str(root / "b")]) == 1
    finally:
        del os.environ["IMBENCH_TEST_FLAKY"]
    focal_b = [p for p in (root / "b" / "records").glob("*focal*.json")]
    gone = json.loads(focal_b[0].read_text())["labels"]["cell"]
    focal_b[0].unlink()  # planned by the command, never recorded: a missing cell
    return root, gone


def test_report_merges_runs_and_lists_failed_and_missing(cli, two_runs, tmp_path):
    root, gone = two_runs
    code, stdout, err = cli("report", root / "a", root / "b", "--out", tmp_path / "rep")
    assert code == 0, err
    assert "5 records, 1 missing cells" in stdout
    table = pd.read_csv(tmp_path / "rep" / "results.csv")
    head = table[table["metric"] == "balanced_accuracy"]
    assert sorted(set(head["recipe"])) == ["longtail(ir=10)", "longtail(ir=20)"]
    flaky20 = head[(head["method"] == "flaky") & (head["recipe"] == "longtail(ir=20)")].iloc[0]
    assert flaky20["n_seeds"] == 0 and flaky20["n_failed"] == 1
    pivot = pd.read_csv(tmp_path / "rep" / "pivot_classification.csv", index_col=0)
    assert set(pivot.index) == {"erm", "focal", "flaky"}
    assert list(pivot.columns) == ["digits / longtail(ir=10)", "digits / longtail(ir=20)"]
    assert pd.isna(pivot.loc["focal", "digits / longtail(ir=20)"]) and pd.isna(pivot.loc["flaky", "digits / longtail(ir=20)"])
    stats = json.loads((tmp_path / "rep" / "friedman_classification.json").read_text())
    # focal lacks ir=20: dropped from the cross-block test, and said so; flaky (prepare hands the
    # set back: erm's copy on ir=10) is left out as a copy of erm
    assert stats["dropped_methods"] == ["focal"] and stats["copies_of_erm"] == ["flaky"]
    report = (tmp_path / "rep" / "report.html").read_text()
    assert gone in report and "RuntimeError: flaky failure" in report


def test_the_same_cell_in_two_directories_counts_once(cli, two_runs, tmp_path):
    root, _ = two_runs
    shutil.copytree(root / "a", tmp_path / "copy")
    code, stdout, _ = cli("report", root / "a", tmp_path / "copy", "--out", tmp_path / "rep")
    assert code == 0 and "3 records" in stdout
    table = pd.read_csv(tmp_path / "rep" / "results.csv")
    assert (table[table["metric"] == "balanced_accuracy"]["n_seeds"] == 1).all()


def test_report_of_a_folder_without_records_is_exit_2(cli, tmp_path):
    code, _, err = cli("report", tmp_path, "--out", tmp_path / "rep")
    assert code == 2 and "not a run directory" in err and err.count("\n") == 1


def test_commands_are_logged_with_the_cells_they_planned(two_runs):
    root, _ = two_runs
    (entry,) = [json.loads(line) for line in (root / "a" / "commands.jsonl").read_text().splitlines()]
    assert entry["command"].startswith("imbench run classification --methods erm,focal,flaky")
    assert len(entry["cells"]) == 3
    assert set(entry["cells"]) == {r["config_hash"] for r in read_records(root / "a")}


def test_run_writes_its_report_at_the_end(cli, tmp_path):
    from html.parser import HTMLParser

    code, stdout, err = cli("run", "classification", "--methods", "erm,focal", "--ir", "10", "--out", tmp_path / "o", "--report", *SMOKE)
    assert code == 0, err
    html = (tmp_path / "o" / "report" / "report.html").read_text()
    assert f"report:      {tmp_path / 'o' / 'report' / 'report.html'}" in stdout
    assert html.count("data:image/png;base64,") >= 2 and "http://" not in html and "https://" not in html
    assert "imbench run classification --methods erm,focal" in html  # the command that made it, from commands.jsonl
    HTMLParser().feed(html)
    table = pd.read_csv(tmp_path / "o" / "report" / "results.csv")
    board = pd.read_csv(tmp_path / "o" / "leaderboard.csv")
    head = table[table["metric"] == "balanced_accuracy"].set_index("method")["mean"]
    assert board.set_index("method")["balanced_accuracy_mean"].to_dict() == pytest.approx(head.to_dict())


def test_half_written_files_of_a_killed_run_are_ignored(cli, two_runs, tmp_path):
    root, _ = two_runs
    shutil.copytree(root / "a", tmp_path / "a")
    (tmp_path / "a" / "records" / ".tmp-abc.json").write_text('{"status": "o')
    with open(tmp_path / "a" / "commands.jsonl", "a") as fh:
        fh.write('{"command": "imbench run --cut sh')
    code, stdout, err = cli("report", tmp_path / "a", "--out", tmp_path / "rep")
    assert code == 0, err
    assert "3 records" in stdout


def test_a_method_that_failed_everywhere_is_listed_as_left_out(tmp_path):
    from imbench.results.aggregate import tidy
    from imbench.results.report import rank_statistics
    from tests.test_aggregate import record

    recs = [record(m, 0, v, recipe_ir=ir) for ir in (10, 50) for m, v in (("erm", 0.5), ("a", 0.7), ("b", 0.6))]
    recs += [record("dead", 0, 0, status="failed", recipe_ir=ir) for ir in (10, 50)]
    stats = rank_statistics(tidy(recs), "score", False, tmp_path, "toy")
    assert stats["dropped_methods"] == ["dead"] and stats["n_methods"] == 3


def test_post_hoc_reading_follows_demsar():
    from imbench.results.report import post_hoc_reading

    assert "rejects" in post_hoc_reading({"f_f_pvalue": 0.01, "chi2_f_pvalue": 0.02}, 2.0, 5, 10)
    assert "does not reject" in post_hoc_reading({"f_f_pvalue": 0.2, "chi2_f_pvalue": 0.1}, 2.0, 5, 10)
    assert "does not reject" in post_hoc_reading({"f_f_pvalue": None, "chi2_f_pvalue": 0.3}, 2.0, 5, 10)
    # 16 methods in 2 blocks: CD 16.3 > 15, the largest possible rank difference
    assert "no pair can be separated" in post_hoc_reading({"f_f_pvalue": 0.001}, 16.3, 16, 2)
