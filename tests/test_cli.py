"""Command-line behaviour: listings, one-line errors with exit code 2, nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASELINES = ["erm", "ros", "rus", "smote", "adasyn", "borderline-smote", "class-weighted", "cb-loss",
             "focal", "ldam-drw", "augment", "random-erasing"]


def test_ls_methods_lists_every_baseline_with_its_paper(cli):
    code, out, _ = cli("ls", "methods", "--track", "classification")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name in BASELINES:
        assert name in lines, name
        assert "baseline" in lines[name]
    assert "Cao" in lines["ldam-drw"] and "Cui" in lines["cb-loss"] and "Lin" in lines["focal"]


@pytest.mark.parametrize("kind, expected", [
    ("datasets", ["digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "svhn", "medmnist"]),
    ("recipes", ["longtail", "step", "binary", "drop-one", "intra"]),
    ("models", ["small-cnn", "resnet32", "resnet18"]),
    ("profiles", ["smoke", "quick", "paper"]),
    ("suites", ["quick", "mnist-lt"]),
    ("tracks", ["classification"]),
])
def test_ls_kinds(cli, kind, expected):
    code, out, _ = cli("ls", kind)
    assert code == 0
    names = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert set(expected) <= names


BAD_INPUTS = [
    (["run", "clasification"], "did you mean classification"),
    (["run", "--methods", "smoet"], "did you mean smote"),
    (["run", "--dataset", "mnsit"], "did you mean mnist"),
    (["run", "--model", "resnet-32"], "did you mean resnet32"),
    (["run", "--profile", "quik"], "did you mean quick"),
    (["run", "--recipe", "longtial"], "did you mean longtail"),
    (["run", "--ir", "0.5"], "--ir must be at least 1"),
    (["run", "--ir", "ten"], "bad --ir"),
    (["run", "--seeds", "a,b"], "bad --seeds"),
    (["run", "--methods", "cb-loss:beta=1.5"], "beta"),
    (["run", "--methods", "focal:gama=2"], "no parameter 'gama'"),
    (["run", "--plugin", "no_such_module:Thing"], "cannot import plugin"),
    (["run", "--dataset", "mnist", "--data-root", "/nonexistent/imbench"], "/nonexistent/imbench"),
    (["run", "--dataset", "medmnist"], "--data-path"),
    (["run", "--recipe", "drop-one:fraction=0.001"], "0"),
    (["run", "--recipe", "step:mu=2"], "mu"),
    (["run", "--device", "tpu"], "unknown device"),
    (["ls", "widgets"], "unknown list"),
    (["run", "--no-such-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, argv, message):
    out = tmp_path / "out"
    extra = ["--out", str(out), "--quiet"] if argv[0] == "run" else []
    code, stdout, stderr = cli(*argv, *extra)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("imbench: error: "), stderr
    assert message in stderr
    assert not out.exists()


def test_console_script_is_installed(tmp_path):
    exe = Path(sys.executable).with_name("imbench")
    if not exe.exists():
        pytest.skip("console script not installed next to this interpreter")
    proc = subprocess.run([str(exe), "run", "--methods", "nope", "--quiet"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("imbench: error: unknown method 'nope'")
    assert not (tmp_path / "runs").exists()
