"""The runner: validate every cell, run the missing ones, record each, write the leaderboard."""
from __future__ import annotations

import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..tasks import get_track
from .contract.errors import UsageError
from .contract.identity import config_hash, setting_hash, without_code
from .labels import labels, record_path
from .plugins import load_methods, method_class
from .code import code_identity, method_code
from .executors import WorkerLost
from .contract.records import RECORD_VERSION, RecordExistsError, cpu_model, git_state, read_record, versions, write_record


class CodeMismatchError(RuntimeError):
    """A worker loaded other code for a method than the driver planned the cell with."""


def resolve_device(name: str, executor: str = "local", gpus_per_cell: float = 0.0) -> str:
    """The device the cells run on: ``auto`` is CUDA where torch sees it, else the CPU (``mps``
    only when asked for: its kernels give other numbers than the CPU's); ``cuda:N`` names one GPU.
    On Ray the tasks' device follows ``--gpus-per-cell`` (a task that reserves no GPU sees none)."""
    name = str(name).strip().lower()
    if executor == "ray":
        if gpus_per_cell > 0:
            if name not in ("auto", "cuda"):
                raise UsageError(f"--gpus-per-cell {gpus_per_cell:g} runs the cells on CUDA; --device {name} "
                                 "contradicts it (use auto or cuda)")
            return "cuda"
        if name not in ("auto", "cpu"):
            raise UsageError(f"--device {name} on Ray needs --gpus-per-cell (e.g. 0.25): a task that reserves "
                             "no GPU sees none")
        return "cpu"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} was asked for but torch sees no CUDA device; use --device auto or cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s) (0-based)")
        return name
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("--device mps was asked for but this torch has no MPS device; use --device auto or cpu")
        return name
    if name != "cpu":
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return name


def validate(cells: list[dict], runtime: dict) -> list[dict]:
    """Load the data and apply every distinct recipe once, so impossible cells fail before any
    write; returns the cells with the content fingerprint of their data (``dataset.fingerprint``)
    added, which makes it part of each cell's identity."""
    seen: dict[str, dict] = {}
    out = []
    for cell in cells:
        key = config_hash({k: cell[k] for k in ("track", "dataset", "recipe", "subset_seed", "model")})
        if key not in seen:
            seen[key] = get_track(cell["track"]).validate(cell, runtime) or {}
        out.append({**cell, "dataset": {**cell["dataset"], **seen[key]}})
    return out


def _attempt(record: dict) -> dict:
    """What a new record keeps of an earlier failed attempt of the same cell."""
    return {"error": record.get("error"), "created": record.get("created"), "git": record.get("git"),
            "device": record.get("device")}


def run_cell(cell: dict, runtime: dict, progress: bool = False, previous: dict | None = None) -> dict:
    """Run one cell and return its record (ok, or failed with the error); write nothing.

    This is what a worker (a pool process, a Ray task) executes; the driver alone writes
    records (:func:`commit`), so a worker left behind by a killed run never writes into ``--out``.
    ``previous`` is the failed record this run retries (its error is kept under ``attempts``)."""
    load_methods(tuple(runtime.get("plugins", ())))
    track = get_track(cell["track"])
    path = record_path(Path(runtime["out"]), cell)
    record = base_record(cell, runtime, previous)
    runtime = {**runtime, "record_stem": path.stem}
    start = time.perf_counter()
    try:
        cls = method_class(cell["method"]["name"])
        record.update(method_family=cls.family, method_hooks=cls.hooks(), method_code=method_code(cls))
        if code_identity(cls) != cell["method"].get("code", {}):
            raise CodeMismatchError(
                f"method {cls.name!r} here is {code_identity(cls)}, the run planned {cell['method'].get('code', {})}: "
                "a worker with other code than the driver (install the same imbench and plugins everywhere)")
        outcome = track.run(cell, cls(**cell["method"]["params"]), runtime, progress)
        extras = dict(outcome.extras)
        record.update(status="ok", error=None, metrics=outcome.metrics, class_counts=outcome.class_counts,
                      timings=outcome.timings, extras=extras, data=outcome.data,
                      training=outcome.training, identical_to=extras.pop("identical_to", None))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing method is recorded, the suite goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
                      metrics={}, class_counts={}, timings={}, training={})
    record["timings"]["total_s"] = time.perf_counter() - start
    record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


def base_record(cell: dict, runtime: dict, previous: dict | None = None) -> dict:
    """The fields of a record that do not depend on how the cell went."""
    names = labels(cell)
    return {
        "record_version": RECORD_VERSION, "config": cell, "config_hash": config_hash(cell),
        "setting_hash": setting_hash(cell), "labels": names, "track_info": get_track(cell["track"]).info(),
        "track": cell["track"], "dataset": cell["dataset"]["name"], "recipe": cell["recipe"],
        "method": cell["method"]["name"], "method_params": cell["method"]["params"],
        "model": cell["model"], "profile": cell["profile"]["name"], "seed": cell["seed"],
        "subset_seed": cell.get("subset_seed", 0),
        "device": runtime["device"], "threads": torch.get_num_threads(),
        "versions": versions(), "cpu": cpu_model(), "git": git_state(), "label": names["cell"],
        "attempts": [*previous.get("attempts", []), _attempt(previous)] if previous else [],
    }


def failed_record(cell: dict, runtime: dict, error: str, previous: dict | None = None) -> dict:
    """The record of a cell whose worker died (a Ray task lost twice): written by the driver."""
    record = base_record(cell, runtime, previous)
    cls = method_class(cell["method"]["name"])
    record.update(method_family=cls.family, method_hooks=cls.hooks(), method_code=method_code(cls))
    record.update(status="failed", error=error, metrics={}, class_counts={}, training={},
                  timings={"total_s": 0.0}, threads=None,
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record


def commit(record: dict, out: Path, *, replace_failed: bool = False) -> dict:
    """Write ``record`` under ``out`` (the driver is the only writer) and return its summary.

    A record that appeared at the same path meanwhile (a leftover writer of an earlier run, or a
    second driver) is not an error: that record stands, the cell counts as done, and the summary
    says ``"existing"``."""
    path = record_path(Path(out), record["config"])
    try:
        write_record(path, record, replace_failed=replace_failed)
    except RecordExistsError:
        record = read_record(path)
        return {**summarise(record, path), "existing": True}
    return summarise(record, path)


def summarise(record: dict, path: Path) -> dict:
    headline = record["track_info"]["headline"]
    return {"path": str(path), "status": record["status"], "label": record["label"], "error": record["error"],
            "headline": (record.get("metrics") or {}).get(headline), "metric": headline, "existing": False}


def execute_cell(cell: dict, runtime: dict, progress: bool = False, previous: dict | None = None) -> dict:
    """Run one cell and write its record in this process; returns the record's summary."""
    record = run_cell(cell, runtime, progress, previous)
    return commit(record, Path(runtime["out"]), replace_failed=previous is not None)


def check_existing(cells: list[dict], out: Path, resume: bool, existing: list | None = None) -> None:
    """Without ``resume``, recorded cells are a usage error (checked before anything is written)."""
    if resume:
        return
    done = sum(r is not None for r in existing) if existing is not None else \
        sum(record_path(Path(out), c).exists() for c in cells)
    if done:
        raise UsageError(f"{done} of these {len(cells)} cells are already recorded in {out}; "
                         "pass --resume to skip them (and retry the failed ones), or --out to write elsewhere")


def run_cells(cells: list[dict], runtime: dict, executor, *, resume: bool, quiet: bool,
              retry: bool = True) -> dict:
    """Run the cells not yet recorded (and, under ``resume``, retry the failed ones unless
    ``retry`` is False); returns counts and the summaries of what ran."""
    out = Path(runtime["out"])
    paths = [record_path(out, c) for c in cells]
    existing = [read_record(p) if p.exists() else None for p in paths]
    check_existing(cells, out, resume, existing)
    todo = [(c, r) for c, r in zip(cells, existing)
            if r is None or (retry and r.get("status") != "ok")]
    retried = sum(r is not None for _, r in todo)
    skipped = len(cells) - len(todo)
    recorded = sum(r is not None for r in existing)
    changed = code_changed([c for c, r in zip(cells, existing) if r is None], out) if resume else 0
    if not quiet and (recorded or changed):
        kept_failed = sum(r is not None and r.get("status") != "ok" for r in existing) - retried
        print(f"resuming: {skipped} cell(s) already recorded ({kept_failed} failed, not retried), "
              f"{retried} failed cell(s) retried, {len(todo) - retried} to run", file=sys.stderr)
    if changed:
        print(f"imbench: {changed} record(s) in {out / 'records'} were left: their method's code changed "
              "(a raised version or an edited plugin); those cells run again", file=sys.stderr)
    serial = executor.jobs == 1
    summaries = []
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=quiet, file=sys.stderr)
    results = executor.run(run_cell, ((c, runtime, serial and not quiet, r) for c, r in todo))
    try:
        for (cell, _, _, previous), outcome in results:
            if isinstance(outcome, WorkerLost):
                outcome = failed_record(cell, runtime, outcome.error, previous)
            summary = commit(outcome, out, replace_failed=previous is not None)
            summaries.append(summary)
            bar.update(1)
            if summary["existing"]:
                bar.write(f"imbench: {summary['label']} was recorded meanwhile by another writer; "
                          "that record stands", file=sys.stderr)
            elif summary["status"] != "ok":
                bar.write(f"FAILED {summary['label']}: {summary['error']}", file=sys.stderr)
            elif not quiet and summary["headline"] is not None:
                bar.set_postfix_str(f"{summary['label']} {summary['metric']}={summary['headline']:.3f}")
    finally:
        results.close()
        bar.close()
    records = [read_record(p) for p in paths]
    failed = [r for r in records if r["status"] != "ok"]
    return {"records": records, "ran": len(todo), "retried": retried, "skipped": skipped, "failed": failed,
            "code_changed": changed}


def code_changed(cells: list[dict], out: Path) -> int:
    """How many of ``cells`` (not recorded) have a record in ``out`` that differs from them only
    in the method's code (``method.code``): records of the same cell by older code, left aside."""
    wanted = {config_hash(without_code(c)) for c in cells}
    if not wanted:
        return 0
    found = set()
    for path in sorted((Path(out) / "records").glob("[!.]*.json")):
        try:
            config = read_record(path)["config"]
        except (OSError, ValueError, KeyError):
            continue
        key = config_hash(without_code(config))
        if key in wanted:
            found.add(key)
    return len(found)
