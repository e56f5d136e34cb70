"""Executors run cells: in this process, or in a local pool of worker processes.

Both yield results as cells finish. The pool uses the ``spawn`` start method (safe with
torch's thread pools) and gives each worker ``threads`` torch threads; a worker re-loads
the ``--plugin`` modules, and entry-point plugins are found again through ``sys.path``.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator

from .contract.errors import UsageError

JOBS_ENV = "IMBENCH_JOBS"  # the default of --jobs when the flag is not given (else "auto")


class SerialExecutor:
    """Runs cells one after another in this process (per-epoch progress), with ``threads`` torch
    threads while it runs (None: torch's default, untouched)."""

    jobs = 1

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator:
        import torch

        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            for args in tasks:
                yield fn(*args)
        finally:
            torch.set_num_threads(before)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class PoolExecutor:
    """Runs cells in ``jobs`` worker processes on this machine."""

    def __init__(self, jobs: int, threads: int = 1):
        self.jobs, self.threads = jobs, threads

    def run(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                    initargs=(self.threads,)) as pool:
            futures = [pool.submit(fn, *args) for args in tasks]
            try:
                for fut in cf.as_completed(futures):
                    yield fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_jobs(spec: str | int | None, *, device: str, cells: int, cores: int | None = None) -> int:
    """The number of worker processes for ``--jobs spec`` (None: ``$IMBENCH_JOBS``, else ``auto``).

    ``auto``: on a CPU, one worker per usable core (at most one per cell), each with one torch
    thread: on 2 cores two 1-thread workers finish the quick suite ~1.2x sooner than one process
    with 2 threads, and the numbers no longer depend on the machine's core count. On CUDA, 1
    (cells share one GPU; a single process keeps it busy). A number N >= 1 is taken as given;
    1 runs in this process, with per-epoch progress.
    """
    text = _spec(spec)
    if text == "auto":
        if device != "cpu":
            return 1
        return max(1, min(cores or usable_cores(), cells))
    try:
        jobs = int(text)
    except ValueError:
        raise UsageError(f"--jobs must be a number >= 1 or 'auto', got {spec!r}") from None
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 or 'auto', got {spec!r}")
    return jobs


def _spec(spec: str | int | None) -> str:
    """``--jobs`` as given, else ``$IMBENCH_JOBS``, else ``auto``; lower-cased text."""
    if spec is None:
        spec = os.environ.get(JOBS_ENV) or "auto"
    return str(spec).strip().lower()


def make_executor(jobs: int, spec: str | int | None = None, device: str = "cpu") -> SerialExecutor | PoolExecutor:
    """The executor for ``jobs`` workers. Under ``auto`` on a CPU every cell computes with one
    torch thread -- in a worker, or in this process when one worker is all there is (one cell,
    one core) -- so a cell's numbers do not depend on how many cells or cores the run has; an
    explicit ``--jobs 1`` keeps torch's default thread count (the record says which)."""
    if jobs > 1:
        return PoolExecutor(jobs)
    return SerialExecutor(threads=1 if _spec(spec) == "auto" and device == "cpu" else None)
