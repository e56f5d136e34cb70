"""The Ray executor on this machine (``ray.init(num_cpus=2)``): the same records as the local
executor, resume, a dead worker retried once then recorded as failed. Needs ``imbench[ray]``."""
from __future__ import annotations

import pytest

from imbench.benchmarks.contract.records import read_records

ray = pytest.importorskip("ray")

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10", "--seeds", "0,1"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (a run that finds Ray started uses it and leaves it running)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def _metrics(out):
    return {r["config_hash"]: r["metrics"] for r in read_records(out)}


def test_ray_gives_the_local_records_and_resumes(cli, tmp_path, local_ray):
    args = ["run", "classification", "--methods", "erm,ros,focal", *SMOKE]
    code, _, err = cli(*args, "--jobs", "2", "--out", tmp_path / "local")
    assert code == 0, err
    code, out, err = cli(*args, "--executor", "ray", "--out", tmp_path / "ray")
    assert code == 0, err
    local, remote = _metrics(tmp_path / "local"), _metrics(tmp_path / "ray")
    assert len(local) == 6 and local == remote
    assert all(r["threads"] == 1 and r["status"] == "ok" for r in read_records(tmp_path / "ray"))
    code, out, err = cli(*args, "--executor", "ray", "--out", tmp_path / "ray", "--resume")
    assert code == 0 and "0 run now" in out and "6 resumed" in out


def test_a_task_whose_worker_dies_is_retried_once_then_recorded_failed(cli, tmp_path, local_ray):
    log = tmp_path / "tries.txt"
    code, _, err = cli("run", "classification", "--plugin", "tests.plugin_fixtures:Crash",
                       "--methods", f"erm,crash:log={log}", "--executor", "ray", "--out", tmp_path / "o",
                       "--profile", "smoke", "--quiet", "--ir", "10", "--seeds", "0")
    assert code == 1
    records = {r["method"]: r for r in read_records(tmp_path / "o")}
    assert records["erm"]["status"] == "ok"
    assert records["crash"]["status"] == "failed"
    assert "retried 1 time" in records["crash"]["error"]
    tries = log.read_text().splitlines()
    assert len(tries) == 2 and len({t.split()[1] for t in tries}) == 2  # a try and one retry, two processes
    assert "crash" in err


def test_ray_flags_are_checked_before_anything_runs(cli, tmp_path):
    code, _, err = cli("run", "classification", "--gpus-per-cell", "0.5", "--out", tmp_path / "o")
    assert code == 2 and "--executor ray" in err
    code, _, err = cli("run", "classification", "--executor", "ray", "--device", "cuda", "--out", tmp_path / "o")
    assert code == 2 and "--gpus-per-cell" in err
    assert not (tmp_path / "o").exists()
