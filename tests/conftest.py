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


@pytest.fixture(autouse=True, scope="session")
def _cells_in_process():
    """In-process CLI tests run their few smoke cells serially (``--jobs auto`` would spawn a
    worker pool per test); the tests of the pool pass ``--jobs`` explicitly."""
    import os

    before = os.environ.get("IMBENCH_JOBS")
    os.environ["IMBENCH_JOBS"] = "1"
    yield
    if before is None:
        os.environ.pop("IMBENCH_JOBS", None)
    else:
        os.environ["IMBENCH_JOBS"] = before


@pytest.fixture(autouse=True, scope="session")
def _no_report_by_default():
    """``imbench run`` writes a report (plots, HTML; ~2-15 s) at its end; the many small runs of
    the tests skip it unless they pass ``--report`` (tests/test_report.py does)."""
    import os

    before = os.environ.get("IMBENCH_REPORT")
    os.environ["IMBENCH_REPORT"] = "0"
    yield
    if before is None:
        os.environ.pop("IMBENCH_REPORT", None)
    else:
        os.environ["IMBENCH_REPORT"] = before


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """pytest-xdist runs two workers on two cores: one torch thread each avoids OpenMP spinning
    against the other worker (which made tiny-network tests 10-100x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
