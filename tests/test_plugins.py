"""Methods as plugins: entry points, --plugin, the name-clash rule, the contract suite."""
from __future__ import annotations

import sys
import textwrap

import pytest

from imbench.benchmarks import plugins
from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.plugins import METHODS, load_entry_points, load_methods, register_method
from imbench.benchmarks.contract.records import read_records
from imbench.testing import check_method, run_smoke_cell

PLUGIN_SOURCE = '''
from imbench.benchmarks.contract import Method


class KeepTwo(Method):
    """Under-sample every class to at most `keep` items."""

    name = "keep-two"
    tracks = ("classification",)
    summary = "keep at most `keep` items per class"
    reference = "entry-point test plugin"
    defaults = {"keep": 2}

    def prepare(self, train, ctx):
        rng = ctx.rng("keep-two")
        keep = []
        for c in range(train.num_classes):
            idx = (train.labels == c).nonzero().flatten().numpy()
            keep += sorted(rng.permutation(idx)[: self.params["keep"]].tolist())
        return train.subset(sorted(keep))
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real distribution on sys.path: a module plus a dist-info with an imbench.methods entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "imbench_keeptwo.py").write_text(PLUGIN_SOURCE)
    info = site / "imbench_keeptwo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: imbench-keeptwo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[imbench.methods]\nkeep-two = imbench_keeptwo:KeepTwo\n")
    monkeypatch.syspath_prepend(str(site))
    yield "keep-two"
    if "keep-two" in METHODS:
        METHODS._items.pop("keep-two")
        METHODS._origin.pop("keep-two")
    sys.modules.pop("imbench_keeptwo", None)


def test_entry_point_plugin_is_discovered_and_runs_in_a_suite(installed_plugin, cli, tmp_path):
    assert "keep-two" in load_entry_points()
    assert "entry point" in METHODS.origin("keep-two")
    code, out, _ = cli("ls", "methods")
    assert code == 0 and "keep-two" in out
    code, _, _ = cli("run", "classification", "--methods", "erm,keep-two:keep=3", "--seeds", "0", "--profile", "smoke",
                     "--ir", "10", "--quiet", "--out", tmp_path / "o")
    assert code == 0
    rec = {r["method"]: r for r in read_records(tmp_path / "o")}
    assert rec["keep-two"]["status"] == "ok"
    assert rec["keep-two"]["class_counts"]["trained_on"] == [3] * 10
    assert rec["keep-two"]["method_params"] == {"keep": 3}
    check_method(METHODS.get("keep-two"))


def test_plugin_option_registers_a_module_attribute(cli, tmp_path):
    code, out, _ = cli("ls", "methods", "--plugin", "tests.plugin_fixtures:Halve")
    assert code == 0 and "halve" in out
    record = run_smoke_cell("halve", tmp_path, plugins=("tests.plugin_fixtures:Halve",))
    assert record["status"] == "ok"
    assert sum(record["class_counts"]["trained_on"]) == (sum(record["class_counts"]["recipe"]) + 1) // 2


def test_a_plugin_cannot_replace_a_builtin():
    load_methods()

    class FakeErm(METHODS.get("erm")):
        name = "erm"

    with pytest.raises(UsageError, match="clashes"):
        register_method(FakeErm, origin="a plugin")
    assert METHODS.get("erm") is not FakeErm


def test_broken_entry_point_is_a_one_line_error(tmp_path, monkeypatch, cli):
    site = tmp_path / "site"
    info = site / "broken-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[imbench.methods]\nbroken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(plugins._state, "entry_points", False)
    code, _, err = cli("ls", "methods")
    assert code == 2 and "cannot load plugin entry point broken" in err and err.count("\n") == 1


def test_non_method_plugin_is_rejected(cli):
    code, _, err = cli("ls", "methods", "--plugin", "textwrap:dedent")
    assert code == 2 and "not a subclass" in err


def test_readme_plugin_example_is_complete(tmp_path, monkeypatch):
    """The plugin example in the README runs as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README has no plugin example block"
    (tmp_path / "readme_plugin.py").write_text(textwrap.dedent(block.group(1)))
    monkeypatch.syspath_prepend(str(tmp_path))
    names = plugins.load_plugin("readme_plugin")
    try:
        assert len(names) == 1
        check_method(METHODS.get(names[0]))
    finally:
        for n in names:
            METHODS._items.pop(n, None)
            METHODS._origin.pop(n, None)


def test_plugins_written_for_the_old_module_paths_still_load():
    import importlib
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import imbench.benchmarks.errors as old_errors
        import imbench.benchmarks.method as old_method

        importlib.reload(old_method)
        importlib.reload(old_errors)
    from imbench.benchmarks.contract import Context, Method, UsageError

    assert old_method.Method is Method and old_method.Context is Context and old_errors.UsageError is UsageError
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    ctx = Context(track="classification", class_names=["a", "b"], instance_counts=[5, 2], minority=[1], seed=0)
    assert ctx.class_counts == [5, 2] and ctx.image_counts == [5, 2]
