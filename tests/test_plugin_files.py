"""Plugins from where the user is (a module in the current folder, a file path), the README's
example run verbatim, and the plugin's code in the cell identity."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imbench.benchmarks.contract.records import read_records
from imbench.benchmarks.plugins import METHODS

REPO = Path(__file__).resolve().parents[1]
FAST = ["--profile", "smoke", "--seeds", "0", "--ir", "10", "--quiet", "--no-report", "--jobs", "1"]


def _readme_example() -> tuple[str, list[str]]:
    """The README's plugin module (the python block after ``<!-- plugin-example -->``) and its
    command (the line after ``<!-- plugin-command -->``)."""
    text = (REPO / "README.md").read_text()
    code = re.search(r"<!-- plugin-example -->\n```python\n(.*?)```", text, re.S).group(1)
    command = re.search(r"<!-- plugin-command -->\n`([^`]+)`", text).group(1)
    return code, command.split()


def _imbench() -> str:
    script = Path(sys.executable).with_name("imbench")
    return str(script) if script.exists() else (shutil.which("imbench") or "imbench")


def _console(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (not ``python -m``, which would put the
    current folder on the import path by itself)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IMBENCH_JOBS", "IMBENCH_REPORT")}
    return subprocess.run([_imbench(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def forget(request):
    """Unregister the given method names and modules after the test (in-process CLI runs)."""
    names: list[str] = []
    yield names
    for name in names:
        _unregister(name)


def _unregister(name: str) -> None:
    """Forget method ``name`` and its module, as a new process would not have them."""
    cls = METHODS._items.pop(name, None)
    METHODS._origin.pop(name, None)
    if cls is not None:
        sys.modules.pop(cls.__module__, None)


def test_the_readme_plugin_example_runs_as_the_readme_says(tmp_path):
    code, command = _readme_example()
    (tmp_path / "my_module.py").write_text(code)
    assert command[:3] == ["imbench", "run", "classification"]  # it names its track
    done = _console([*command[1:], *FAST, "--out", "o"], tmp_path)
    assert done.returncode == 0, done.stderr
    records = read_records(tmp_path / "o")
    assert sorted(r["method"] for r in records) == ["cdt", "erm"]
    assert {r["track"] for r in records} == {"classification"}
    cdt = next(r for r in records if r["method"] == "cdt")
    assert cdt["method_params"] == {"gamma": 0.3}
    assert cdt["method_code"]["builtin"] is False and cdt["method_code"]["module"] == "my_module"
    assert cdt["method_code"]["file"] == str((tmp_path / "my_module.py").resolve())
    # the same file by path, from another folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spec = command[command.index("--plugin") + 1].replace("my_module:", "../my_module.py:")
    done = _console(["run", "classification", "--plugin", spec, "--methods", "cdt:gamma=0.3", *FAST, "--out", "o"], elsewhere)
    assert done.returncode == 0, done.stderr
    again = read_records(elsewhere / "o")[0]
    assert again["config_hash"] == cdt["config_hash"] and again["metrics"] == cdt["metrics"]


def test_a_missing_plugin_file_is_one_line_exit_2(cli, tmp_path):
    code, _, err = cli("run", "classification", "--plugin", "./nowhere.py:X", "--out", tmp_path / "o")
    assert code == 2 and "no file" in err and err.count("\n") == 1


PLUGIN = '''
import torch.nn.functional as F

from imbench.benchmarks.contract import Method


class Edited(Method):
    name = "edited"
    tracks = ("classification",)
    summary = "a plugin whose loss the test edits"
    reference = "test"

    def criterion(self, ctx):
        return lambda logits, y: F.cross_entropy(logits * SCALE, y)
'''


def test_an_edited_plugin_makes_new_cells_and_resume_says_so(cli, tmp_path, monkeypatch, forget):
    forget.append("edited")
    plugin = tmp_path / "edited.py"
    plugin.write_text(PLUGIN.replace("SCALE", "1.0"))
    args = ["run", "classification", "--plugin", f"{plugin}:Edited", "--methods", "edited", *FAST,
            "--out", tmp_path / "o"]
    assert cli(*args)[0] == 0
    before = read_records(tmp_path / "o")[0]
    assert before["config"]["method"]["code"]["source"] == before["method_code"]["source"]

    _unregister("edited")  # the next run loads the edited file afresh, as a new process would
    plugin.write_text(PLUGIN.replace("SCALE", "0.5"))
    code, out, err = cli(*args, "--resume")
    assert code == 0, err
    assert "1 record(s)" in err and "code changed" in err
    assert "1 run now" in out and "left for changed code" in out
    after = [r for r in read_records(tmp_path / "o") if r["config_hash"] != before["config_hash"]]
    assert len(after) == 1 and after[0]["method_code"]["source"] != before["method_code"]["source"]
    assert after[0]["metrics"] != before["metrics"]


def test_raising_a_builtin_version_reruns_its_cells_under_resume(cli, tmp_path, monkeypatch):
    from imbench.baselines.focal import Focal

    args = ["run", "classification", "--methods", "erm,focal", *FAST, "--out", tmp_path / "o"]
    assert cli(*args)[0] == 0
    code, out, _ = cli(*args, "--resume")
    assert code == 0 and "0 run now" in out
    monkeypatch.setattr(Focal, "version", Focal.version + 1)
    code, out, err = cli(*args, "--resume")
    assert code == 0 and "1 run now" in out and "1 record(s)" in err
    focal = sorted((r for r in read_records(tmp_path / "o") if r["method"] == "focal"),
                   key=lambda r: r["method_code"]["version"])
    assert [r["method_code"]["version"] for r in focal] == [Focal.version - 1, Focal.version]
    # version 1 adds nothing to the cell (identities from before versions existed still resume);
    # a raised version does
    assert "code" not in focal[0]["config"]["method"] and focal[1]["config"]["method"]["code"] == {"version": 2}
    assert focal[0]["metrics"] == focal[1]["metrics"]  # the same code: a version is a promise, not a change
    # the statistics read the newest code's record of each cell: one focal row, not two
    from imbench.results.aggregate import tidy

    rows = tidy(read_records(tmp_path / "o"))
    assert sorted(rows[rows["metric"] == "balanced_accuracy"]["method"]) == ["erm", "focal"]
