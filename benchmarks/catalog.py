"""The catalogue of what imbench ships, for ``imbench ls`` without importing torch.

``imbench ls`` must answer at once, and the built-in methods, datasets, recipes, models and tracks
live in modules that import torch (seconds on a laptop). ``catalog.json`` beside this file holds
the rows ``imbench ls`` prints for the built-ins, made from the live registries by
``python -m imbench.benchmarks.catalog`` (run it after adding or changing a built-in;
``tests/test_cli_fast.py`` fails while the file differs from the registries). Plugins -- an
installed entry point or ``--plugin`` -- are not in it: with one, ``imbench ls`` loads the
registries for real.
"""
from __future__ import annotations

import json
from pathlib import Path

CATALOG = Path(__file__).with_name("catalog.json")
ENTRY_POINT_GROUP = "imbench.methods"  # installed method plugins (read by ``plugins``)
KINDS = ("methods", "datasets", "recipes", "models", "tracks")
HEADERS = {
    "methods": ("name", "family", "tracks", "summary", "reference", "parameters"),
    "datasets": ("name", "tracks", "summary", "reference", "needs"),
    "recipes": ("name", "tracks", "summary", "reference", "parameters"),
    "models": ("name", "tracks", "summary", "reference", ""),
    "tracks": ("name", "summary"),
}


def method_rows(names=None) -> list[list[str]]:
    """One row per registered method (all, or ``names``), as ``imbench ls methods`` prints it."""
    from .plugins import METHODS

    rows = []
    for name in sorted(names if names is not None else METHODS):
        cls = METHODS.get(name)
        params = " ".join(f"{k}={v}" for k, v in cls.defaults.items())
        rows.append([name, cls.family, ",".join(cls.tracks), cls.summary, cls.reference, params])
    return rows


def registry_rows(kind: str) -> list[list[str]]:
    """One row per registered dataset / recipe / model spec (a name two tracks define
    differently shows twice), sorted by name and tracks."""
    from ..tasks import TRACKS

    seen: dict[tuple, list[str]] = {}
    for track_name in TRACKS:
        track = TRACKS.get(track_name)
        reg = {"datasets": track.datasets, "recipes": track.recipes, "models": track.models}[kind]()
        for name in reg:
            spec = reg.get(name)
            tracks = tuple(getattr(spec, "tracks", (track_name,)))
            if (name, id(spec)) in seen:
                continue
            extra = getattr(spec, "needs", None) or " ".join(
                f"{k}={v}" for k, v in getattr(spec, "defaults", {}).items())
            seen[(name, id(spec))] = [name, ",".join(tracks), spec.summary, spec.reference, extra]
    return sorted(seen.values(), key=lambda r: (r[0], r[1]))


def build() -> dict:
    """The catalogue of the built-ins, from the live registries."""
    from ..tasks import TRACKS
    from .plugins import METHODS, load_builtins

    load_builtins()
    builtin = [n for n in METHODS if METHODS.origin(n) == "builtin"]
    return {"methods": method_rows(builtin),
            **{kind: registry_rows(kind) for kind in ("datasets", "recipes", "models")},
            "tracks": [[n, TRACKS.get(n).summary] for n in TRACKS]}


def load() -> dict:
    return json.loads(CATALOG.read_text())


def write(path: Path = CATALOG) -> Path:
    path.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(f"wrote {write()}")
