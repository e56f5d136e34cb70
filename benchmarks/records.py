"""Run records: one JSON file per cell, written atomically and never rewritten.

A record holds ``status`` (``ok`` / ``failed``), ``error``, the resolved ``config`` and its
``config_hash``, ``track``, ``method``, ``dataset``, ``recipe``, ``model``, ``profile``,
``seed``, ``class_counts``, ``metrics``, ``timings`` (prepare / train / evaluate / total
seconds), ``extras`` (what the method noted), ``data`` (how the source and split were made),
``versions``, ``git`` (SHA and dirty flag), ``device``, ``threads``, ``created``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RECORD_VERSION = 1
_PACKAGES = ("imbench", "torch", "torchvision", "numpy", "scikit-learn", "imbalanced-learn",
             "torchmetrics", "pandas")


def config_hash(config: dict) -> str:
    """A stable hash of a resolved cell configuration."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_name(cell: dict) -> str:
    from .suite import recipe_label

    recipe = recipe_label(cell["recipe"]).replace("(", "-").replace(")", "").replace(",", "-").replace("=", "")
    parts = [cell["track"], cell["dataset"]["name"], recipe, cell["method"]["name"], cell["model"],
             f"s{cell['seed']}", config_hash(cell)]
    return "_".join(p.replace("/", "-") for p in parts) + ".json"


def record_path(out: Path, cell: dict) -> Path:
    return Path(out) / "records" / record_name(cell)


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically; refuse to replace an existing record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, allow_nan=False, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # fails if the record exists: records are never rewritten
    finally:
        os.unlink(tmp)


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
    return [read_record(p) for p in sorted((Path(out) / "records").glob("*.json"))]


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
