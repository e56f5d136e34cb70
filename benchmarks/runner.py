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
from .errors import UsageError
from .plugins import METHODS, load_methods
from .records import RECORD_VERSION, config_hash, git_state, read_record, record_path, versions, write_record
from .suite import cell_label


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")
    return name


def validate(cells: list[dict], runtime: dict) -> None:
    """Load data and apply every distinct recipe once, so impossible cells fail before any write."""
    seen = set()
    for cell in cells:
        key = config_hash({k: cell[k] for k in ("track", "dataset", "recipe", "seed", "model")})
        if key not in seen:
            seen.add(key)
            get_track(cell["track"]).validate(cell, runtime)


def execute_cell(cell: dict, runtime: dict, progress: bool = False) -> dict:
    """Run one cell and write its record (ok or failed). Returns a short summary."""
    load_methods(tuple(runtime.get("plugins", ())))
    track = get_track(cell["track"])
    path = record_path(Path(runtime["out"]), cell)
    record = {
        "record_version": RECORD_VERSION, "config": cell, "config_hash": config_hash(cell),
        "track": cell["track"], "dataset": cell["dataset"]["name"], "recipe": cell["recipe"],
        "method": cell["method"]["name"], "method_params": cell["method"]["params"],
        "model": cell["model"], "profile": cell["profile"]["name"], "seed": cell["seed"],
        "device": runtime["device"], "threads": torch.get_num_threads(),
        "versions": versions(), "git": git_state(), "label": cell_label(cell),
    }
    runtime = {**runtime, "record_stem": path.stem}
    start = time.perf_counter()
    try:
        cls = METHODS.get(cell["method"]["name"])
        record.update(method_family=cls.family, method_hooks=cls.hooks())
        outcome = track.run(cell, cls(**cell["method"]["params"]), runtime, progress)
        record.update(status="ok", error=None, metrics=outcome.metrics, class_counts=outcome.class_counts,
                      timings=outcome.timings, extras=outcome.extras, data=outcome.data)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing method is recorded, the suite goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
                      metrics={}, class_counts={}, timings={})
    record["timings"]["total_s"] = time.perf_counter() - start
    record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_record(path, record)
    headline = record["metrics"].get(track.headline_metric)
    return {"path": str(path), "status": record["status"], "label": record["label"],
            "error": record["error"], "headline": headline, "metric": track.headline_metric}


def run_cells(cells: list[dict], runtime: dict, executor, *, resume: bool, quiet: bool) -> dict:
    """Run the cells not yet recorded; returns counts and the summaries of what ran."""
    out = Path(runtime["out"])
    paths = [record_path(out, c) for c in cells]
    done = [p.exists() for p in paths]
    if any(done) and not resume:
        raise UsageError(f"{sum(done)} of these {len(cells)} cells are already recorded in {out}; "
                         "pass --resume to skip them, or --out to write elsewhere")
    todo = [c for c, d in zip(cells, done) if not d]
    skipped = len(cells) - len(todo)
    if not quiet and skipped:
        print(f"resuming: {skipped} cell(s) already recorded, {len(todo)} to run", file=sys.stderr)
    serial = executor.jobs == 1
    summaries = []
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=quiet, file=sys.stderr)
    try:
        tasks = ((c, runtime, serial and not quiet) for c in todo)
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
    return {"records": records, "ran": len(todo), "skipped": skipped, "failed": failed}
