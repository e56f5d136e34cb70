"""Runs you can kill: a killed or interrupted run leaves no worker behind and nothing half-written,
workers never write records, and a resumed run equals an uninterrupted one."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imbench.benchmarks.contract.records import read_records

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
RUN = ["run", "classification", "--plugin", "tests.plugin_fixtures:Sleepy", "--methods", "erm,sleepy:seconds=2",
       "--seeds", "0-2", "--profile", "smoke", "--ir", "10", "--quiet", "--no-report"]


def _imbench() -> list[str]:
    script = Path(sys.executable).with_name("imbench")
    return [str(script)] if script.exists() else [shutil.which("imbench") or "imbench"]


def _children(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (the pool's workers and multiprocessing's tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _count(out: Path) -> int:
    return len(list((out / "records").glob("[!.]*.json"))) if (out / "records").exists() else 0


def _start(out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("IMBENCH_JOBS", "IMBENCH_REPORT")}
    return subprocess.Popen([*_imbench(), *RUN, "--jobs", "2", "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_records(proc: subprocess.Popen, out: Path, n: int = 1, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while _count(out) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no record in time"
        time.sleep(0.2)


def _gone(pids: list[int], timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


def test_kill_9_leaves_no_worker_and_no_late_record_and_resume_equals_an_uninterrupted_run(cli, tmp_path):
    out = tmp_path / "o"
    proc = _start(out)
    _wait_for_records(proc, out)
    workers = _children(proc.pid)
    assert len(workers) >= 2  # two pool workers (and multiprocessing's resource tracker)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _count(out)
    assert _gone(workers), [p for p in workers if _alive(p)]
    time.sleep(3)  # longer than a sleepy cell: a surviving worker would have written by now
    assert _count(out) == at_kill < 6
    assert not list((out / "records").glob(".tmp-*"))

    code, _, err = cli(*RUN, "--out", out, "--resume")
    assert code == 0, err
    assert cli(*RUN, "--out", tmp_path / "full")[0] == 0
    resumed = {r["config_hash"]: r["metrics"] for r in read_records(out)}
    full = {r["config_hash"]: r["metrics"] for r in read_records(tmp_path / "full")}
    assert len(resumed) == 6 and resumed == full


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_end_the_workers_and_keep_the_finished_cells(tmp_path, sig, code):
    out = tmp_path / "o"
    proc = _start(out)
    _wait_for_records(proc, out)
    workers = _children(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "finished cells are recorded" in err and "Traceback" not in err
    assert _gone(workers)
    kept = read_records(out)
    assert kept and all(r["status"] == "ok" for r in kept)
    assert not list((out / "records").glob(".tmp-*"))


def test_a_record_written_meanwhile_by_another_writer_stands(tmp_path):
    from imbench.benchmarks.cli import main  # noqa: F401  (the registries)
    from imbench.benchmarks.runner import commit, failed_record
    from imbench.benchmarks.suite import Overrides, expand, load_suite
    from imbench.benchmarks.plugins import load_methods

    load_methods()
    cell = expand(load_suite("classification"), Overrides(methods=["erm"], seeds=[0], ir=[10.0]))[0]
    runtime = {"out": str(tmp_path), "device": "cpu"}
    first = commit(failed_record(cell, runtime, "first writer"), tmp_path)
    second = commit(failed_record(cell, runtime, "second writer"), tmp_path)
    assert not first["existing"] and second["existing"]
    assert [r["error"] for r in read_records(tmp_path)] == ["first writer"]


def test_a_cell_that_kills_its_pool_worker_is_retried_alone_then_recorded_lost(cli, tmp_path):
    """One bad cell (its worker dies: OOM-killed, say) costs one failed record, not the run: the
    cells that were running are retried alone, the crashing one dies again and is recorded, the
    others finish."""
    log = tmp_path / "tries.txt"
    code, _, err = cli("run", "classification", "--plugin", "tests.plugin_fixtures:Crash",
                       "--methods", f"erm,crash:log={log},ros", "--seeds", "0,1", "--jobs", "2",
                       "--profile", "smoke", "--quiet", "--ir", "10", "--no-report", "--out", tmp_path / "o")
    assert code == 1, err
    records = read_records(tmp_path / "o")
    assert len(records) == 6
    lost = [r for r in records if r["method"] == "crash"]
    assert all(r["status"] == "failed" and "worker process died" in r["error"] for r in lost)
    assert all(r["status"] == "ok" for r in records if r["method"] != "crash")
    # each crash cell died at least once alone (a cell killed with the pool before it reached its
    # own crash has only that one try), never more than twice
    seeds = [line.split()[0] for line in log.read_text().splitlines()]
    assert {seeds.count(s) for s in ("0", "1")} <= {1, 2} and set(seeds) == {"0", "1"}
