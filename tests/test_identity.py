"""Cell identity and run safety: what makes two cells different, duplicates, locks, errors, retries."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from imbench.benchmarks.contract.identity import config_hash
from imbench.benchmarks.labels import method_label, recipe_label
from imbench.benchmarks.contract.records import read_records
from imbench.benchmarks.suite import Overrides, dedupe, expand

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10"]


def _suite(methods, recipes=({"name": "longtail", "ir": 10},)):
    return {"name": "t", "grids": [{"track": "classification", "datasets": ["digits"], "recipes": list(recipes),
                                    "methods": list(methods), "models": ["small-cnn"], "seeds": [0],
                                    "profile": "smoke"}]}


def test_two_parameter_settings_of_one_method_are_two_rows(cli, tmp_path):
    code, stdout, _ = cli("run", "classification", "--methods", "focal,focal:gamma=0.5", "--seeds", "0", "--out", tmp_path / "o", *SMOKE)
    assert code == 0
    records = read_records(tmp_path / "o")
    assert len(records) == 2 and len({r["config_hash"] for r in records}) == 2
    board = pd.read_csv(tmp_path / "o" / "leaderboard.csv")
    assert sorted(board["method"]) == ["focal", "focal:gamma=0.5"]
    assert (board["n_seeds"] == 1).all()
    assert "| focal:gamma=0.5 | 1 |" in stdout


@pytest.mark.parametrize("variant", ["class_order=random", "n_max=100"])
def test_recipe_parameters_the_old_label_dropped_make_separate_rows(cli, tmp_path, variant):
    code, _, _ = cli("run", "classification", "--recipe", f"longtail,longtail:{variant}", "--methods", "erm", "--seeds", "0",
                     "--out", tmp_path / "o", *SMOKE)
    assert code == 0
    board = pd.read_csv(tmp_path / "o" / "leaderboard.csv")
    assert sorted(board["recipe"]) == sorted(["longtail(ir=10)", f"longtail(ir=10,{variant})"])
    assert (board["n_seeds"] == 1).all()


def test_yaml_and_command_line_numbers_are_one_cell():
    yaml_cells = expand(_suite([{"name": "focal", "gamma": 1}]), Overrides())
    cli_cells = expand(_suite(["focal:gamma=1.0"]), Overrides())
    assert config_hash(yaml_cells[0]) == config_hash(cli_cells[0])
    assert yaml_cells[0]["method"]["params"]["gamma"] == 1.0
    assert isinstance(yaml_cells[0]["method"]["params"]["gamma"], float)


def test_labels_show_non_default_parameters_only():
    assert method_label({"name": "focal", "params": {"gamma": 2.0, "alpha": -1.0}}) == "focal"
    assert method_label({"name": "cb-loss", "params": {"beta": 0.99, "loss": "focal", "gamma": 1.0}}) \
        == "cb-loss:beta=0.99:loss=focal"
    assert recipe_label({"name": "step", "params": {"ir": 10.0, "mu": 0.5, "class_order": "index", "n_max": 0}}) \
        == "step(ir=10)"
    assert recipe_label({"name": "binary", "params": {"ir": 10.0, "positive": 3, "fraction": 0.0,
                                                      "n_max": 0}}).startswith("binary(ir=10,positive=3")


def test_identity_covers_budget_content_seeds_and_data_but_not_git(cli, tmp_path):
    base = expand(_suite(["erm"]), Overrides())[0]
    other_budget = {**base, "profile": {**base["profile"], "budget": {**base["profile"]["budget"], "epochs": 3}}}
    other_subset = {**base, "subset_seed": 1}
    other_data = {**base, "dataset": {**base["dataset"], "fingerprint": "abc"}}
    hashes = {config_hash(c) for c in (base, other_budget, other_subset, other_data)}
    assert len(hashes) == 4
    code, _, _ = cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", tmp_path / "o", *SMOKE)
    (record,) = read_records(tmp_path / "o")
    assert record["git"]["sha"] is not None or record["git"] == {"sha": None, "dirty": None}
    assert set(record["config"]) == {"track", "dataset", "recipe", "method", "model", "profile", "subset_seed", "seed"}
    assert record["config_hash"] == config_hash(record["config"])
    assert record["config"]["dataset"]["fingerprint"] == record["data"]["source"]["fingerprint"]


def _write_npz(path: Path, seed: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 60), ("val", 6), ("test", 30)):
        y = np.repeat(np.arange(3), n // 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = y[:, None].astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def test_other_data_files_are_other_cells_never_resumed_into(cli, tmp_path):
    a, b = _write_npz(tmp_path / "a.npz", 0), _write_npz(tmp_path / "b.npz", 1)
    args = ["run", "classification", "--dataset", "medmnist", "--methods", "erm", "--seeds", "0", "--out", tmp_path / "o",
            "--profile", "smoke", "--quiet", "--ir", "2"]
    assert cli(*args, "--data-path", a)[0] == 0
    code, _, _ = cli(*args, "--data-path", b, "--resume")
    assert code == 0
    records = read_records(tmp_path / "o")
    assert len(records) == 2
    assert len({r["config"]["dataset"]["fingerprint"] for r in records}) == 2
    from imbench.results.leaderboard import leaderboard

    board = leaderboard(records)
    assert len(board) == 2 and len(set(board["dataset"])) == 2  # one name, two data: labels made unique
    assert all(d.startswith("medmnist#") for d in board["dataset"])


@pytest.mark.parametrize("extra", [["--seeds", "0,0", "--methods", "erm"], ["--seeds", "0", "--methods", "erm,erm"]])
def test_duplicate_cells_run_once_with_one_line(cli, tmp_path, extra):
    code, _, err = cli("run", "classification", *extra, "--out", tmp_path / "o", *SMOKE)
    assert code == 0, err
    assert len(read_records(tmp_path / "o")) == 1
    assert "1 duplicate cell(s)" in err and len(err.strip().splitlines()) == 1


def test_dedupe_keeps_first_seen_order():
    cells = expand(_suite(["erm", "focal", "erm"]), Overrides())
    unique, repeats = dedupe(cells)
    assert [c["method"]["name"] for c in unique] == ["erm", "focal"] and len(repeats) == 1


def test_a_live_run_holds_its_out_folder_and_a_dead_one_does_not(cli, tmp_path):
    from imbench.benchmarks.runlock import LOCK_NAME, RunLock

    out = tmp_path / "o"
    out.mkdir()
    with RunLock(out):
        code, _, err = cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", out, *SMOKE)
    assert code == 2 and err.count("\n") == 1
    assert f"pid {os.getpid()}" in err and "another imbench run" in err
    assert not (out / "records").exists()
    # a lock file left behind by a killed run (no process holds it) does not block
    (out / LOCK_NAME).write_text('{"pid": 999999, "host": "gone", "started": "then", "command": "imbench run"}')
    assert cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", out, *SMOKE)[0] == 0


def test_out_that_cannot_be_created_is_one_line_exit_2(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", blocker / "sub", *SMOKE)
    assert code == 2 and err.count("\n") == 1 and "cannot create --out" in err


def test_internal_error_is_one_line_exit_3_with_a_log(cli, tmp_path, monkeypatch):
    import imbench.results.leaderboard as lb

    def broken(*a, **k):
        raise RuntimeError("leaderboard exploded")

    monkeypatch.setattr(lb, "write_leaderboard", broken)
    code, _, err = cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", tmp_path / "o", *SMOKE)
    assert code == 3 and err.count("\n") == 1
    assert "internal error: RuntimeError: leaderboard exploded" in err
    log = Path(err.split("traceback in ")[1].split(";")[0])
    assert "Traceback" in log.read_text() and "broken" in log.read_text()
    log.unlink()
    code, _, err = cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", tmp_path / "o2", "--debug", *SMOKE)
    assert code == 3 and "Traceback (most recent call last)" in err


def test_resume_retries_failed_cells_and_keeps_the_error(cli, tmp_path, monkeypatch):
    args = ["run", "classification", "--methods", "erm,flaky", "--plugin", "tests.plugin_fixtures:Flaky", "--seeds", "0",
            "--out", tmp_path / "o", *SMOKE]
    monkeypatch.setenv("IMBENCH_TEST_FLAKY", "fail")
    assert cli(*args)[0] == 1
    first = {r["method"]: r for r in read_records(tmp_path / "o")}
    assert first["flaky"]["status"] == "failed"
    monkeypatch.delenv("IMBENCH_TEST_FLAKY")
    code, stdout, _ = cli(*args, "--resume", "--no-retry")
    assert code == 1 and "0 run now" in stdout
    code, stdout, _ = cli(*args, "--resume")
    assert code == 0 and "1 run now (1 retried)" in stdout
    after = {r["method"]: r for r in read_records(tmp_path / "o")}
    assert after["flaky"]["status"] == "ok"
    assert [a["error"] for a in after["flaky"]["attempts"]] == [first["flaky"]["error"]]
    assert after["erm"] == first["erm"]  # an ok record is never rewritten
    assert len(list((tmp_path / "o" / "records").glob("*.json"))) == 2


def test_no_retry_needs_resume(cli, tmp_path):
    code, _, err = cli("run", "classification", "--methods", "erm", "--no-retry", "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and "--resume" in err and not (tmp_path / "o").exists()


def test_a_second_writer_of_one_record_is_an_error_not_a_silent_overwrite(tmp_path):
    from imbench.benchmarks.contract.records import RecordExistsError, write_record

    path = tmp_path / "records" / "r.json"
    write_record(path, {"status": "ok"})
    with pytest.raises(RecordExistsError):
        write_record(path, {"status": "ok", "other": 1})
    with pytest.raises(RecordExistsError):
        write_record(path, {"status": "ok", "other": 1}, replace_failed=True)  # only a failed one is replaced
    assert json.loads(path.read_text()) == {"status": "ok"}


@pytest.mark.parametrize("a, b", [
    ({"name": "cgan", "blend": 0.5}, "cgan:blend=.50"),
    ({"name": "cgan", "blend": 1}, "cgan:blend=full"),
    ({"name": "ldam-drw", "drw": 1}, "ldam-drw:drw=true"),
    ({"name": "smote", "k_neighbors": 5.0}, "smote"),
])
def test_one_setting_written_two_ways_is_one_cell(a, b):
    assert config_hash(expand(_suite([a]), Overrides())[0]) == config_hash(expand(_suite([b]), Overrides())[0])


def test_impossible_parameter_types_are_usage_errors():
    from imbench.benchmarks.contract.errors import UsageError

    with pytest.raises(UsageError, match="not a valid int"):
        expand(_suite([{"name": "smote", "k_neighbors": 5.5}]), Overrides())
    with pytest.raises(UsageError, match="not a valid bool"):
        expand(_suite([{"name": "ldam-drw", "drw": 2}]), Overrides())


def test_profile_numbers_are_normalised_and_required(tmp_path):
    import yaml

    from imbench.benchmarks.contract.errors import UsageError
    from imbench.benchmarks.profiles import budget

    base = budget("smoke", "classification")
    text = tmp_path / "mine.yaml"
    text.write_text(yaml.safe_dump({"classification": {**base, "lr": "5e-2", "epochs": 2.0}}))
    assert budget(str(text), "classification") == base  # YAML's "5e-2" is text: read as 0.05
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"classification": {k: v for k, v in base.items() if k != "lr"}}))
    with pytest.raises(UsageError, match="needs 'lr'"):
        budget(str(broken), "classification")


def test_budget_unit_shows_in_the_labels(cli, tmp_path):
    assert cli("run", "classification", "--methods", "erm", "--seeds", "0", "--budget-unit", "epochs", "--out", tmp_path / "o", *SMOKE)[0] == 0
    (record,) = read_records(tmp_path / "o")
    assert record["labels"]["profile"] == "smoke(budget_unit=epochs)"
    assert "/smoke(budget_unit=epochs)/s0" in record["labels"]["cell"]


def test_a_refused_run_writes_nothing(cli, tmp_path):
    args = ["run", "classification", "--methods", "erm", "--out", tmp_path / "o", *SMOKE]
    assert cli(*args, "--seeds", "0")[0] == 0
    before = (tmp_path / "o" / "commands.jsonl").read_text()
    code, _, err = cli(*args, "--seeds", "0,1")
    assert code == 2 and "--resume" in err
    assert (tmp_path / "o" / "commands.jsonl").read_text() == before
