"""Executors run cells: in this process, in a local pool of worker processes, or on Ray
(:mod:`.ray_executor`).

Each yields ``(task, outcome)`` as cells finish, where ``outcome`` is what the function returned
(a record) or a :class:`WorkerLost` when the process running it died. Workers compute and return;
the driver alone writes records, so a worker never writes into ``--out``.

The pool uses the ``spawn`` start method (safe with torch's thread pools) and gives each worker
``threads`` torch threads; a worker re-loads the ``--plugin`` modules, and entry-point plugins are
found again through ``sys.path``. Its workers do not outlive the run that started them: on Linux
each asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so even a
``kill -9`` of ``imbench`` ends them; everywhere, a worker checks before each cell that its parent
is the one that started it and exits otherwise. Workers ignore SIGINT: Ctrl-C reaches the driver,
which terminates them and exits 130 with the finished cells recorded.
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .contract.errors import UsageError

JOBS_ENV = "IMBENCH_JOBS"  # the default of --jobs when the flag is not given (else "auto")
_PR_SET_PDEATHSIG = 1


@dataclass
class WorkerLost:
    """The outcome of a task whose worker process died (what the executor could learn of why)."""

    error: str


class SerialExecutor:
    """Runs cells one after another in this process (per-epoch progress), with ``threads`` torch
    threads while it runs (None: torch's default, untouched)."""

    jobs = 1

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator[tuple[tuple, object]]:
        import torch

        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            for args in tasks:
                yield args, fn(*args)
        finally:
            torch.set_num_threads(before)


def die_with_parent(parent: int) -> None:
    """Make this worker process end when ``parent`` (the driver) ends, by any signal: SIGKILL on
    the parent's death where Linux offers it, and an exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the per-cell check below still holds
            pass
    if os.getppid() != parent:
        os._exit(0)


def _init_worker(threads: int, parent: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    die_with_parent(parent)
    torch.set_num_threads(threads)


def _in_worker(parent: int, started: str, index: int, fn: Callable, *args):
    if os.getppid() != parent:  # the driver is gone (no PDEATHSIG here): run nothing more
        os._exit(0)
    open(os.path.join(started, str(index)), "w").close()  # the driver learns which tasks ran
    return fn(*args)


LOST = ("a worker process died running this cell (killed, out of memory?); it was retried once, alone, "
        "and died again")


class PoolExecutor:
    """Runs cells in ``jobs`` worker processes on this machine.

    A worker that dies (killed, out of memory) breaks the pool: every unfinished cell fails with
    ``BrokenProcessPool``. The cells that had started then are suspects; each is retried once
    alone (one worker, nothing beside it), and one that kills its worker again is recorded as
    lost (:class:`WorkerLost`); the cells that had not started go on in a fresh pool. So one bad
    cell costs one failed record, not the run."""

    def __init__(self, jobs: int, threads: int = 1):
        self.jobs, self.threads = jobs, threads

    def run(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator[tuple[tuple, object]]:
        import tempfile

        tasks = list(tasks)
        with tempfile.TemporaryDirectory(prefix="imbench-started-") as started:
            todo, suspects = list(range(len(tasks))), []
            while todo or suspects:
                if suspects:  # alone, one at a time: a second death is this cell's own
                    i = suspects.pop(0)
                    broken = yield from self._pool(fn, tasks, [i], 1, started)
                    if broken:
                        yield tasks[i], WorkerLost(LOST)
                    continue
                broken = yield from self._pool(fn, tasks, todo, self.jobs, started)
                ran = {int(name) for name in os.listdir(started)}
                suspects = [i for i in broken if i in ran]
                todo = [i for i in broken if i not in ran]

    def _pool(self, fn: Callable, tasks: list, indices: list[int], workers: int, started: str):
        """Run ``tasks[indices]`` in a fresh pool, yielding finished ones; returns the indices
        that the pool's breaking left unfinished (empty when it did not break)."""
        for name in os.listdir(started):
            os.unlink(os.path.join(started, name))
        ctx = multiprocessing.get_context("spawn")
        parent = os.getpid()
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                      initargs=(self.threads, parent))
        broken: list[int] = []
        try:
            futures = {pool.submit(_in_worker, parent, started, i, fn, *tasks[i]): i for i in indices}
            for fut in cf.as_completed(futures):
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    broken.append(futures[fut])
                    continue
                yield tasks[futures[fut]], result
        except BaseException:
            _terminate(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return sorted(broken)


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """End the pool's workers now (an interrupt, or an error in the driver): the cells they run
    are not recorded, and rerun under ``--resume``."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, ValueError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


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


def make_executor(jobs: int, device: str = "cpu", threads: int = 1) -> SerialExecutor | PoolExecutor:
    """The executor for ``jobs`` workers. On a CPU every cell computes with ``threads`` torch
    threads (``--threads``, default 1) -- in a worker, or in this process when one worker is all
    there is -- whatever ``--jobs`` says: the thread count changes a cell's floats (measured: up to
    0.012 mIoU and 0.016 AP between 1 and 2 threads), so a cell gives the same numbers in a run of
    one cell or 300, with ``--jobs 1`` or ``auto``, on 2 cores or 32. On a GPU this process keeps
    torch's default for the little CPU work left."""
    if jobs > 1:
        return PoolExecutor(jobs, threads)
    return SerialExecutor(threads=threads if device == "cpu" else None)
