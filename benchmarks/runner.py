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
from .contract.identity import config_hash, setting_hash
from .labels import labels, record_path
from .plugins import load_methods, method_class
from .contract.records import RECORD_VERSION, git_state, read_record, versions, write_record


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")
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


def execute_cell(cell: dict, runtime: dict, progress: bool = False, previous: dict | None = None) -> dict:
    """Run one cell and write its record (ok or failed). Returns a short summary. ``previous``
    is the failed record this run retries (its error is kept under ``attempts``)."""
    load_methods(tuple(runtime.get("plugins", ())))
    track = get_track(cell["track"])
    path = record_path(Path(runtime["out"]), cell)
    names = labels(cell)
    record = {
        "record_version": RECORD_VERSION, "config": cell, "config_hash": config_hash(cell),
        "setting_hash": setting_hash(cell), "labels": names, "track_info": track.info(),
        "track": cell["track"], "dataset": cell["dataset"]["name"], "recipe": cell["recipe"],
        "method": cell["method"]["name"], "method_params": cell["method"]["params"],
        "model": cell["model"], "profile": cell["profile"]["name"], "seed": cell["seed"],
        "subset_seed": cell.get("subset_seed", 0),
        "device": runtime["device"], "threads": torch.get_num_threads(),
        "versions": versions(), "git": git_state(), "label": names["cell"],
        "attempts": [*previous.get("attempts", []), _attempt(previous)] if previous else [],
    }
    runtime = {**runtime, "record_stem": path.stem}
    start = time.perf_counter()
    try:
        cls = method_class(cell["method"]["name"])
        record.update(method_family=cls.family, method_hooks=cls.hooks())
        outcome = track.run(cell, cls(**cell["method"]["params"]), runtime, progress)
        record.update(status="ok", error=None, metrics=outcome.metrics, class_counts=outcome.class_counts,
                      timings=outcome.timings, extras=outcome.extras, data=outcome.data,
                      training=outcome.training)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing method is recorded, the suite goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
                      metrics={}, class_counts={}, timings={}, training={})
    record["timings"]["total_s"] = time.perf_counter() - start
    record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_record(path, record, replace_failed=previous is not None)
    headline = record["metrics"].get(track.headline_metric)
    return {"path": str(path), "status": record["status"], "label": record["label"],
            "error": record["error"], "headline": headline, "metric": track.headline_metric}


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
    if not quiet and recorded:
        kept_failed = sum(r is not None and r.get("status") != "ok" for r in existing) - retried
        print(f"resuming: {skipped} cell(s) already recorded ({kept_failed} failed, not retried), "
              f"{retried} failed cell(s) retried, {len(todo) - retried} to run", file=sys.stderr)
    serial = executor.jobs == 1
    summaries = []
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=quiet, file=sys.stderr)
    try:
        tasks = ((c, runtime, serial and not quiet, r) for c, r in todo)
        for summary in executor.run(execute_cell, tasks):
            summaries.append(summary)
            bar.update(1)
            if summary["status"] != "ok":
                bar.write(f"FAILED {summary['label']}: {summary['error']}", file=sys.stderr)
            elif not quiet and summary["headline"] is not None:
                bar.set_postfix_str(f"{summary['label']} {summary['metric']}={summary['headline']:.3f}")
    finally:
        bar.close()
    records = [read_record(p) for p in paths]
    failed = [r for r in records if r["status"] != "ok"]
    return {"records": records, "ran": len(todo), "retried": retried, "skipped": skipped, "failed": failed}
