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
def _cli_defaults_for_tests():
    """The in-process CLI tests run their few smoke cells serially (``--jobs auto`` would spawn a
    worker pool per test; the tests of the pool pass ``--jobs``) and without the report that
    ``imbench run`` writes at its end (plots, HTML: ~2-15 s; tests/test_report.py passes
    ``--report``)."""
    import os

    wanted = {"IMBENCH_JOBS": "1", "IMBENCH_REPORT": "0"}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """pytest-xdist runs two workers on two cores: one torch thread each avoids OpenMP spinning
    against the other worker (which made tiny-network tests 10-100x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
