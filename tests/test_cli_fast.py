"""A CLI that answers at once: --help, ls and argument errors import no torch; the catalogue
``imbench ls`` reads equals the live registries; ls fits a terminal."""
from __future__ import annotations

import subprocess
import sys

import pytest

from imbench.benchmarks import catalog

PROBE = """
import sys
from imbench.benchmarks.cli import main
try:
    code = main({args!r})
except SystemExit as exc:  # --help
    code = exc.code
heavy = sorted(m for m in ("torch", "torchvision", "monai", "imbench.tasks") if m in sys.modules)
print("HEAVY", heavy, "CODE", code)
"""


@pytest.mark.parametrize("args", [["--help"], ["ls", "methods"], ["ls", "datasets", "--track", "detection"],
                                  ["ls", "profiles"], ["ls", "suites"], ["ls", "tracks"],
                                  ["run", "--jobs", "x"], ["run", "--ir", "abc"], ["run", "--device", "tpu"],
                                  ["run", "--bogus"], ["run", "--no-retry"]])
def test_no_torch_for_help_ls_and_argument_errors(args):
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                          timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("HEAVY")]
    assert line and line[0].startswith("HEAVY []"), (done.stdout[-500:], done.stderr[-500:])
    assert line[0].endswith(f"CODE {0 if args[0] in ('ls', '--help') else 2}")


def test_the_catalogue_equals_the_registries():
    assert catalog.load() == catalog.build(), "run: python -m imbench.benchmarks.catalog"


def test_ls_fits_the_terminal_and_long_gives_whole_rows(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = cli("ls", "methods")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 110
    assert "\u2026" in out
    code, out, _ = cli("ls", "methods", "--long")
    assert "\u2026" not in out
    row = next(line for line in out.splitlines() if line.startswith("ldam-drw "))
    assert "Cao" in row  # the whole reference


def test_ls_with_a_plugin_lists_it_beside_the_builtins(cli):
    code, out, _ = cli("ls", "methods", "--plugin", "tests.plugin_fixtures:Halve", "--long")
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert code == 0 and "halve" in names and "erm" in names
