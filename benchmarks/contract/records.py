"""Run records: one JSON file per cell, written atomically and never rewritten.

A record holds ``status`` (``ok`` / ``failed``), ``error``, the resolved ``config`` and its
``config_hash`` (the cell's identity, see ``identity.py``), ``setting_hash`` (the same without
the seeds: what a leaderboard row averages over), ``labels``, ``track``, ``method``, ``dataset``,
``recipe``, ``model``, ``profile``, ``subset_seed``, ``seed``, ``attempts`` (earlier failed
attempts of this cell), ``training`` (budget unit, optimizer steps, images seen),
``track_info`` (what the report shows), ``class_counts``, ``metrics``, ``timings`` (prepare /
train / evaluate / total seconds), ``extras`` (what the method noted), ``data`` (how the source and split were made),
``versions``, ``git`` (SHA and dirty flag), ``device``, ``threads``, ``created``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


RECORD_VERSION = 2
_PACKAGES = ("imbench", "torch", "torchvision", "numpy", "scikit-learn", "imbalanced-learn",
             "torchmetrics", "pandas")


def write_record(path: Path, record: dict, *, replace_failed: bool = False) -> None:
    """Write ``record`` to ``path`` atomically. A record is never rewritten, except a failed one
    when ``replace_failed`` (a retry under ``--resume``; the new record keeps the old error under
    ``attempts``). Another record already at ``path`` raises ``RecordExistsError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, allow_nan=False, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if the record exists: records are never rewritten
        except FileExistsError:
            if not (replace_failed and read_record(path).get("status") == "failed"):
                raise RecordExistsError(f"a record already exists at {path}; records are never rewritten") from None
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class RecordExistsError(RuntimeError):
    """A second write to one record path (two writers on one --out)."""


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_record(path: Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def read_records(out: Path) -> list[dict]:
    return [read_record(p) for p in sorted((Path(out) / "records").glob("[!.]*.json"))]


@lru_cache(maxsize=None)
def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


@lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``): numbers
    drift in the third decimal between CPUs, so a record names the one it ran on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=None)
def git_state() -> dict:
    """The git SHA of the imbench checkout (None outside a checkout) and whether it is dirty."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return {"sha": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
