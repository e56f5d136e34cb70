"""Suites: YAML files that expand into cells, with command-line overrides.

A suite file has a ``name``, a ``description`` and ``grids``; each grid names a ``track``,
``datasets``, ``recipes`` (``{name: R, param: value-or-list}``; lists expand), ``methods``
(names or specs ``name:key=value``, or ``all`` / ``baseline`` / ``gan``), ``models``,
``seeds`` and a ``profile``. A method that does not support a grid's track is left out of it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..tasks import TRACKS
from .errors import UsageError, unknown
from .plugins import METHODS
from .profiles import budget

SUITES_DIR = Path(__file__).with_name("suites")
FAMILIES = ("all", "baseline", "gan")


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """``"cb-loss:beta=0.99:loss=focal"`` -> ``("cb-loss", {"beta": "0.99", "loss": "focal"})``."""
    name, *parts = [p.strip() for p in str(text).split(":")]
    params = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise UsageError(f"bad parameter {part!r} in {text!r}; write name:key=value")
        params[key.strip()] = value.strip()
    if not name:
        raise UsageError(f"empty name in {text!r}")
    return name, params


def parse_ints(text: str, what: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> a list of ints."""
    out: list[int] = []
    try:
        for part in str(text).split(","):
            a, dash, b = part.strip().partition("-")
            out += list(range(int(a), int(b) + 1)) if dash and a else [int(part)]
    except ValueError:
        raise UsageError(f"bad {what} {text!r}; expected integers like 0,1,2 or 0-4") from None
    return out


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(target: str | None) -> dict:
    """A suite by file path, bundled suite name, track name, or ``all`` (None = ``quick``)."""
    if target is None or target == "all":
        return _read(SUITES_DIR / "quick.yaml")
    if target.endswith((".yaml", ".yml")):
        return _read(Path(target))
    if target in TRACKS:
        suite = _read(SUITES_DIR / "quick.yaml")
        suite["grids"] = [g for g in suite["grids"] if g.get("track") == target]
        suite["name"] = f"quick-{target}"
        return suite
    if (SUITES_DIR / f"{target}.yaml").exists():
        return _read(SUITES_DIR / f"{target}.yaml")
    raise unknown("track or suite", target, [*TRACKS, "all", *suite_names()])


def _read(path: Path) -> dict:
    if not path.exists():
        raise UsageError(f"suite file {path} does not exist")
    try:
        suite = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"suite file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(suite, dict) or not isinstance(suite.get("grids"), list):
        raise UsageError(f"suite file {path} needs a 'grids' list")
    suite.setdefault("name", path.stem)
    return suite


@dataclass
class Overrides:
    datasets: list[str] | None = None
    recipes: list[str] | None = None
    ir: list[float] | None = None
    methods: list[str] | None = None
    models: list[str] | None = None
    seeds: list[int] | None = None
    profile: str | None = None
    split_seed: int | None = None
    blend: str | None = None


def _listify(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _method_specs(entries: list, track: str) -> list[tuple[str, dict]]:
    specs: list[tuple[str, dict]] = []
    for entry in entries:
        if isinstance(entry, dict):
            specs.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
            continue
        name, params = parse_spec(entry)
        if name in FAMILIES:
            specs += [(n, {}) for n in METHODS.names(
                where=lambda c: c.supports(track) and name in ("all", c.family))]
        else:
            specs.append((name, params))
    return specs


def _recipe_grid(entries: list, ir: list[float] | None, track_obj) -> list[tuple[str, dict]]:
    from ..data_recipes.recipes import resolve_recipe

    out = []
    for entry in entries:
        if isinstance(entry, dict):
            name = entry["name"]
            params = {k: v for k, v in entry.items() if k != "name"}
        else:
            name, params = parse_spec(entry)
        track_obj.recipes().get(name)
        if ir is not None:
            params["ir"] = ir
        keys = list(params)
        for values in itertools.product(*(_listify(params[k]) for k in keys)):
            out.append((name, resolve_recipe(name, dict(zip(keys, values)))))
    return out


def expand(suite: dict, ov: Overrides) -> list[dict]:
    """The suite's cells (resolved configurations), in run order."""
    cells = []
    for grid in suite["grids"]:
        track = grid.get("track")
        if track not in TRACKS:
            raise unknown("track", str(track), TRACKS)
        tr = TRACKS.get(track)
        profile = ov.profile or grid.get("profile", "quick")
        bud = budget(profile, track)
        datasets = ov.datasets or _listify(grid.get("datasets", [tr.default_dataset]))
        for d in datasets:
            tr.datasets().get(d)
        recipes = _recipe_grid(ov.recipes or _listify(grid.get("recipes", [])), ov.ir, tr)
        methods = _method_specs(ov.methods or _listify(grid.get("methods", ["all"])), track)
        resolved_methods = []
        for name, params in methods:
            cls = METHODS.get(name)
            if not cls.supports(track):
                raise UsageError(f"method {name!r} does not support track {track!r} (it supports {', '.join(cls.tracks)})")
            if ov.blend is not None and "blend" in cls.defaults and "blend" not in params:
                params = {**params, "blend": ov.blend}
            resolved_methods.append({"name": name, "params": cls(**params).params, "family": cls.family})
        models = ov.models or _listify(grid.get("models", [tr.default_model]))
        for m in models:
            tr.models().get(m)
        seeds = ov.seeds if ov.seeds is not None else [int(s) for s in _listify(grid.get("seeds", [0]))]
        split_seed = ov.split_seed if ov.split_seed is not None else int(grid.get("split_seed", 0))
        for d, (rname, rparams), model, method, seed in itertools.product(
                datasets, recipes, models, resolved_methods, seeds):
            cells.append({
                "track": track,
                "dataset": {"name": d, "split_seed": split_seed},
                "recipe": {"name": rname, "params": rparams},
                "method": {"name": method["name"], "params": method["params"]},
                "model": model,
                # the generative budget belongs only to the cells of generative methods
                "profile": {"name": Path(profile).stem,
                            "budget": bud if method["family"] == "gan" else {k: v for k, v in bud.items() if k != "gan"}},
                "seed": int(seed),
            })
    if not cells:
        raise UsageError("the suite expands to no cells (no grid, recipe, method or seed selected)")
    return cells


def recipe_label(recipe: dict) -> str:
    p = recipe["params"]
    key = [f"{k}={p[k]:g}" if isinstance(p[k], float) else f"{k}={p[k]}" for k in ("ir", "fraction", "target", "mu") if k in p]
    return f"{recipe['name']}({','.join(key)})" if key else recipe["name"]


def cell_label(cell: dict) -> str:
    return f"{cell['dataset']['name']}/{recipe_label(cell['recipe'])}/{cell['method']['name']}/{cell['model']}/s{cell['seed']}"
