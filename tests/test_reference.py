"""The README's reference tables are what the committed records give."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from imbench.results import reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_reference_tables_equal_the_committed_records():
    text = README.read_text()
    blocks = list(reference.BLOCK.finditer(text))
    assert blocks, "the README has no generated reference table"
    assert reference.render(text) == text, "run: python -m imbench.results.reference write README.md"
    for m in blocks:  # every set the README cites is committed with its environment
        env = (reference.REFERENCE_DIR / m.group("name") / "environment.json")
        assert env.exists() and '"cpu"' in env.read_text() and '"torch"' in env.read_text()


def test_pack_then_render_round_trip(cli, tmp_path):
    out = tmp_path / "run"
    args = ["run", "classification", "--methods", "erm,ros,class-weighted", "--seeds", "0,1,2", "--profile", "smoke",
            "--quiet", "--ir", "10", "--out", out]
    assert cli(*args)[0] == 0
    root = tmp_path / "ref"
    reference.pack(out, "demo", {"command": "imbench run ..."}, root=root)
    records = reference.load("demo", root)
    assert len(records) == 9 and records[0]["cpu"]
    doc = "intro\n<!-- reference:demo:classification -->\nstale\n<!-- /reference:demo:classification -->\nend\n"
    new = reference.render(doc, root)
    assert "stale" not in new and new.startswith("intro\n") and new.endswith("end\n")
    rows = {line.split("|")[1].strip(): line for line in new.splitlines() if line.startswith("| `")}
    assert list(rows)[0] == "`erm`" and set(rows) == {"`erm`", "`ros`", "`class-weighted`"}
    erm = [r for r in records if r["method"] == "erm"]
    mean = sum(r["metrics"]["balanced_accuracy"] for r in erm) / 3
    assert f"{mean:.3f} ± " in rows["`erm`"]
    assert reference.render(new, root) == new
    # the :shots kind: per block, balanced accuracy and many / medium / few-shot accuracy
    shots = reference.render("<!-- reference:demo:classification:shots -->\n<!-- /reference:demo:classification:shots -->\n",
                             root)
    assert "| method | balanced accuracy | many | medium |" in shots and "many-shot >" in shots
    erm_row = next(line for line in shots.splitlines() if line.startswith("| `erm` |"))
    many = sum(r["metrics"]["many_acc"] for r in erm) / 3
    assert erm_row.split("|")[3].strip().startswith(f"{many:.3f} ± ")
    # packing is deterministic: the same records, the same bytes
    first = (root / "demo" / "records.jsonl.gz").read_bytes()
    reference.pack(out, "demo", {"command": "imbench run ..."}, root=root)
    assert (root / "demo" / "records.jsonl.gz").read_bytes() == first


def test_significance_needs_p_below_005_and_a_difference_beyond_drift():
    import pandas as pd

    row = pd.Series({"mean": 0.9, "std": 0.01, "identical_to": "", "p_vs_erm": 0.01, "delta_vs_erm": 0.005})
    assert not reference._cell(row, 0.011).endswith("*")
    assert reference._cell(row.copy().replace({0.005: 0.02}), 0.011).endswith(" *")
    assert reference._cell(pd.Series({**row, "p_vs_erm": 0.2, "delta_vs_erm": 0.05}), 0.011) == "0.900 ± 0.010"
    assert reference._cell(pd.Series({**row, "identical_to": "erm"}), 0.011).endswith(" =")
    assert re.fullmatch(r"0\.900 ± 0\.010", reference._cell(pd.Series({**row, "p_vs_erm": float("nan")}), 0.0))


@pytest.mark.parametrize("argv", [[], ["write"], ["frobnicate", "x"]])
def test_bad_usage(argv):
    assert reference.main(argv) == 2


def test_bad_paths_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty" / "records").mkdir(parents=True)
    assert reference.main(["check", str(tmp_path / "no-readme.md")]) == 2
    assert reference.main(["pack", str(tmp_path / "empty"), "demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("imbench.results.reference: error:") for line in err)


def test_blocks_that_differ_only_in_their_profile_get_a_column_each():
    from imbench.results.reference import load, table

    text = table(load("select"), "classification")
    caption, _, header = text.splitlines()[:3]
    assert caption == "digits(validation=0.2) / longtail(ir=10):"  # the one block, named once
    assert header.startswith("| method | quick | standard |")
    erm = next(line for line in text.splitlines() if line.startswith("| `erm` |"))
    assert erm.count("±") == 2  # erm ran in both blocks: neither of its rows hides the other
