from __future__ import annotations

from pathlib import Path

import pytest

from imbench.benchmarks.cli import main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def cli(capsys):
    """Run ``imbench`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").exists():
        pytest.skip("../shared/data/MNIST/raw is not beside the checkout")
    return SHARED_DATA
