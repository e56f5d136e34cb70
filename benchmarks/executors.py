"""Executors run cells: in this process, or in a local pool of worker processes.

Both yield results as cells finish. The pool uses the ``spawn`` start method (safe with
torch's thread pools) and gives each worker ``threads`` torch threads; a worker re-loads
the ``--plugin`` modules, and entry-point plugins are found again through ``sys.path``.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterable, Iterator


class SerialExecutor:
    """Runs cells one after another in this process (the default; per-epoch progress)."""

    jobs = 1

    def run(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator:
        for args in tasks:
            yield fn(*args)


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


def make_executor(jobs: int) -> SerialExecutor | PoolExecutor:
    return SerialExecutor() if jobs <= 1 else PoolExecutor(jobs)
