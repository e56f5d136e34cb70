"""The Ray executor: each cell a Ray task, on this machine or on a cluster (``--executor ray``).

``pip install 'imbench[ray]'``. Without ``--ray-address`` the run starts Ray on this machine
(``ray.init(num_cpus=<usable cores>)``) and stops it at the end; with ``--ray-address auto`` (or
``HOST:PORT``) it joins a running cluster (``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others). Each cell is a task reserving ``cpus_per_cell`` CPUs (its
torch threads: 1 by default, as the local pool's workers have, so a cell's numbers are the same
on either executor) and ``gpus_per_cell`` GPUs (fractions share one GPU).

The driver (``imbench run``) stays the single writer of records and holds the run lock; tasks
return records. Generator caches are keyed by content and locked with ``flock`` (see
``gans.cache_lock``), so two tasks never train the same generator -- on a cluster, on shared
storage that honours ``flock`` (NFS v4, CephFS, Lustre). A task whose worker process dies (killed,
out of memory, a lost node) is retried once by Ray; lost twice, the cell is recorded as failed
with Ray's error. An interrupt cancels the tasks still running.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator

from .contract.errors import UsageError
from .executors import WorkerLost, usable_cores

RETRIES = 1  # a task whose worker dies runs once more, then its cell is recorded as failed


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'imbench[ray]'") from None
    return ray


def cell_task(threads: int, fn: Callable, *args):
    """What a Ray worker runs for one cell: ``fn(*args)`` with ``threads`` torch threads, the
    driver's folder on the import path (plugins found there, as in the driver)."""
    import torch

    runtime = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
    here = runtime.get("cwd")
    if here and os.path.isdir(here) and here not in sys.path:
        sys.path.insert(0, here)
    torch.set_num_threads(max(1, int(threads)))
    return fn(*args)


class RayExecutor:
    """Runs cells as Ray tasks; yields ``(task, record or WorkerLost)`` as they finish."""

    jobs = 2  # never the serial path: no per-epoch progress bars from remote workers

    def __init__(self, address: str | None = None, cpus_per_cell: float = 1.0, gpus_per_cell: float = 0.0,
                 num_cpus: int | None = None):
        self.address, self.cpus, self.gpus = address, float(cpus_per_cell), float(gpus_per_cell)
        self.num_cpus = num_cpus
        _ray()  # fail before anything is written when Ray is not installed

    def _start(self, ray) -> bool:
        """Connect (or start a local Ray); True when this executor started it (and stops it)."""
        if ray.is_initialized():
            return False
        kwargs = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.num_cpus or usable_cores(), **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "this machine"
            raise UsageError(f"cannot start or reach Ray at {where}: {str(exc).splitlines()[0]}") from None
        return True

    def run(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator[tuple[tuple, object]]:
        ray = _ray()
        started = self._start(ray)
        remote = ray.remote(cell_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=RETRIES,
                                               retry_exceptions=False)
        threads = max(1, int(self.cpus))
        pending: dict = {}
        try:
            for args in tasks:
                pending[remote.remote(threads, fn, *args)] = args
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                args = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # raised outside the cell's own try
                    outcome = WorkerLost(f"{type(exc.cause).__name__ if exc.cause else 'RayTaskError'}: "
                                         f"{_first_line(exc.cause or exc)}")
                except ray.exceptions.RayError as exc:  # the worker died twice (killed, OOM, node lost)
                    outcome = WorkerLost(f"{type(exc).__name__}: {_first_line(exc)} "
                                         f"(the task was retried {RETRIES} time(s))")
                yield args, outcome
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - a task already gone
                    pass
            if started:
                ray.shutdown()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
