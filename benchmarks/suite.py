"""Suites: YAML files that expand into cells, with command-line overrides.

A suite file has a ``name``, a ``description`` and ``grids``; each grid names a ``track``,
``datasets``, ``recipes`` (``{name: R, param: value-or-list}``; lists expand), ``methods``
(names or specs ``name:key=value``, hybrids ``a:key=value+b``, mappings ``{name: focal, gamma: 1}``
or ``{name: smote+ldam-drw, smote: {k_neighbors: 3}}``, or ``all`` / ``baseline`` / ``gan``),
``models``, ``budget_scale`` (a number or a list: multiplies the profile's training budget, see
``tasks.schedule.epoch_plan``; a list is a grid axis), ``gan_steps`` (a list: the generator
updates of the generative methods' cells, a grid axis), ``seeds`` (training randomness),
``subset_seeds`` (which images the recipe keeps; default ``[0]``), ``budgets`` (a mapping or a list of
mappings setting the profile's optimizer keys -- ``optimizer``, ``lr``, ``momentum``, ... -- a grid
axis; the settings are part of the profile label, ``quick(optimizer=sgd,lr=0.1)``), ``split_seed``, ``validation`` (a
fraction: the cells train without that share of the training set and are evaluated on it instead of
the test split -- what defaults are chosen on) and a ``profile``. A method that does not support a grid's track
is left out of ``all``; named explicitly, it is an error. ``skip_undertrained: true`` leaves out the
cells of generative methods whose generator budget the profile lists as under-trained (``gan:
undertrained``: a row that judges an untrained generator gives no verdict); methods named with
``--methods`` or ``--gan-steps`` on the command line are kept.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..tasks import TRACKS
from .code import code_identity
from .composite import is_composite, split_parts
from .contract.errors import UsageError, unknown
from .contract.identity import config_hash
from .plugins import METHODS, method_class
from .profiles import BUDGET_UNITS, PRECISIONS, budget

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
    subset_seeds: list[int] | None = None
    profile: str | None = None
    split_seed: int | None = None
    blend: str | None = None
    budget_unit: str | None = None
    image_size: int | None = None
    budget_scale: list[float] | None = None
    precision: str | None = None
    gan_steps: list[int] | None = None
    validation: float | None = None


def _listify(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _method_spec(entry) -> tuple[str, dict]:
    """One method entry (``"name:k=v"``, ``"a:k=v+b"``, or a YAML mapping) -> (name, params);
    a hybrid's params map each part's name to that part's params."""
    if isinstance(entry, dict):
        if "name" not in entry:
            raise UsageError(f"method entry {entry!r} has no 'name'")
        name, params = str(entry["name"]), {k: v for k, v in entry.items() if k != "name"}
        if is_composite(name):
            names = [parse_spec(p)[0] for p in split_parts(name)]
            given = {n: dict(parse_spec(p)[1]) for n, p in zip(names, split_parts(name))}
            for part, values in params.items():
                if not isinstance(values, dict):
                    raise UsageError(f"hybrid {name!r}: give part parameters as {{part: {{key: value}}}}, "
                                     f"got {part}: {values!r}")
                given.setdefault(part, {}).update(values)
            return "+".join(names), given
        return name, params
    parts = [parse_spec(p) for p in split_parts(entry)]
    if len(parts) == 1:
        return parts[0]
    return "+".join(n for n, _ in parts), {n: p for n, p in parts}


def _method_specs(entries: list, track: str) -> list[tuple[str, dict]]:
    specs: list[tuple[str, dict]] = []
    for entry in entries:
        if isinstance(entry, str) and entry.strip() in FAMILIES:
            family = entry.strip()
            specs += [(n, {}) for n in METHODS.names(
                where=lambda c: c.supports(track) and family in ("all", c.family))]
        else:
            specs.append(_method_spec(entry))
    return specs


def _recipe_grid(entries: list, ir: list[float] | None, track_obj) -> list[tuple[str, dict]]:
    """(name, resolved params) per recipe setting; ``ir`` (``--ir``) reaches the recipes that
    have that parameter."""
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            name = entry["name"]
            params = {k: v for k, v in entry.items() if k != "name"}
        else:
            name, params = parse_spec(entry)
        spec = track_obj.recipes().get(name)
        if ir is not None and "ir" in spec.defaults:
            params["ir"] = ir
        keys = list(params)
        for values in itertools.product(*(_listify(params[k]) for k in keys)):
            out.append((name, track_obj.resolve_recipe(name, dict(zip(keys, values)))))
    return out


def _resolve_method(name: str, params: dict, track: str, blend: str | None) -> dict:
    cls = method_class(name)
    if not cls.supports(track):
        raise UsageError(f"method {name!r} does not support track {track!r} (it supports {', '.join(cls.tracks)})")
    if blend is not None:
        if getattr(cls, "part_names", None):
            params = {n: ({**params.get(n, {}), "blend": blend}
                          if "blend" in cls.defaults[n] and "blend" not in params.get(n, {}) else params.get(n, {}))
                      for n in cls.part_names}
        elif "blend" in cls.defaults and "blend" not in params:
            params = {**params, "blend": blend}
    families = getattr(cls, "families", (cls.family,))
    return {"name": name, "params": cls(**params).params, "generative": "gan" in families,
            "code": code_identity(cls)}


def _for_track(items: list | None, fits, used: set) -> list | None:
    """The command-line override items that apply to a grid's track (``fits(item)``); None when
    there is no override. Items that apply are added to ``used``."""
    if items is None:
        return None
    keep = [i for i in items if fits(i)]
    used.update(map(_key, keep))
    return keep


def _key(item) -> str:
    return item if isinstance(item, str) else repr(item)


def _method_fits(entry, track: str) -> bool:
    if isinstance(entry, str) and entry.strip() in FAMILIES:
        return True
    name, _ = _method_spec(entry)
    return method_class(name).supports(track)


def _check_overrides_used(ov: Overrides, used: dict, tracks: list[str]) -> None:
    """An override item that applies to no grid of the suite is a usage error."""
    for what, items, registry in (("dataset", ov.datasets, "datasets"), ("recipe", ov.recipes, "recipes"),
                                  ("model", ov.models, "models")):
        for item in items or []:
            if _key(item) not in used[what]:
                name = parse_spec(item)[0] if what == "recipe" else item
                known = [n for t in tracks for n in getattr(TRACKS.get(t), registry)()]
                raise unknown(f"{what} (for the tracks of this suite: {', '.join(tracks)})", name, known)
    for item in ov.methods or []:
        if _key(item) not in used["method"]:
            name, _ = _method_spec(item)
            cls = method_class(name)
            raise UsageError(f"method {name!r} supports {', '.join(cls.tracks)}, and this suite runs "
                             f"{', '.join(tracks)}; pick a track it supports (imbench run TRACK)")


def expand(suite: dict, ov: Overrides, notes: list[str] | None = None) -> list[dict]:
    """The suite's cells (resolved configurations), in run order; duplicates kept (see ``dedupe``).

    Command-line lists (``--dataset``, ``--recipe``, ``--methods``, ``--model``) reach the grids
    whose track has the names they give (``--methods smote`` runs the classification grids of a
    two-track suite, ``--methods erm`` both); a grid none of them reaches is left out, and a name
    no grid takes is a usage error.

    A dataset named with ``--dataset`` that the grid does not list keeps its own size and split
    seed (only ``--image-size`` / ``--split-seed`` change them), and, without ``--recipe``, gets
    the grid's recipes only where it can take all of them -- else its own default recipe
    (``natural`` for a real scene or label-map set), with a line in ``notes`` saying so."""
    notes = [] if notes is None else notes
    cells = []
    used: dict[str, set] = {"dataset": set(), "recipe": set(), "method": set(), "model": set()}
    tracks = []
    for grid in suite["grids"]:
        track = grid.get("track")
        if track not in TRACKS:
            raise unknown("track", str(track), TRACKS)
        tr = TRACKS.get(track)
        tracks.append(track)
        o_datasets = _for_track(ov.datasets, lambda d: d in tr.datasets(), used["dataset"])
        o_recipes = _for_track(ov.recipes, lambda r: parse_spec(r)[0] in tr.recipes(), used["recipe"])
        o_methods = _for_track(ov.methods, lambda m: _method_fits(m, track), used["method"])
        o_models = _for_track(ov.models, lambda m: m in tr.models(), used["model"])
        if any(o is not None and not o for o in (o_datasets, o_recipes, o_methods, o_models)):
            continue  # the command line names nothing of this grid's track
        profile = ov.profile or grid.get("profile", "quick")
        variants = []  # (the grid's ``budgets`` variant, the budget it gives)
        for settings in _budget_settings(grid):
            bud = budget(profile, track, settings)
            if ov.budget_unit is not None:
                if ov.budget_unit not in BUDGET_UNITS:
                    raise UsageError(f"--budget-unit must be one of {', '.join(BUDGET_UNITS)}, got {ov.budget_unit!r}")
                bud["budget_unit"] = ov.budget_unit
            if ov.precision is not None:
                if ov.precision not in PRECISIONS:
                    raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {ov.precision!r}")
                bud["precision"] = ov.precision
            variants.append((settings, bud))
        scales = _scales(ov.budget_scale if ov.budget_scale is not None else _listify(grid.get("budget_scale", 1)))
        gan_steps = _gan_steps(ov.gan_steps if ov.gan_steps is not None else _listify(grid.get("gan_steps", [])))
        grid_datasets = _listify(grid.get("datasets", [tr.default_dataset]))
        datasets = o_datasets or grid_datasets
        for d in datasets:
            tr.datasets().get(d)
        recipes = _recipe_grid(o_recipes or _listify(grid.get("recipes", [])), ov.ir, tr)
        methods = [_resolve_method(n, p, track, ov.blend)
                   for n, p in _method_specs(o_methods or _listify(grid.get("methods", ["all"])), track)]
        models = o_models or _listify(grid.get("models", [tr.default_model]))
        skip_short = bool(grid.get("skip_undertrained")) and not o_methods and ov.gan_steps is None
        skipped: set[str] = set()
        for m in models:
            tr.models().get(m)
        seeds = ov.seeds if ov.seeds is not None else _ints(grid.get("seeds", [0]), "seeds")
        subsets = ov.subset_seeds if ov.subset_seeds is not None else _ints(grid.get("subset_seeds", [0]), "subset_seeds")
        _image_size(grid, ov, tr)  # a grid's image_size on a track of fixed size is an error
        for s in [*seeds, *subsets, ov.split_seed or 0, int(grid.get("split_seed", 0))]:
            if s < 0:
                raise UsageError(f"seeds must be >= 0, got {s}")
        named = {n for n, _ in _method_specs([m for m in (o_methods or _listify(grid.get("methods", ["all"])))
                                              if not (isinstance(m, str) and m.strip() in FAMILIES)], track)}
        for method in methods:
            bad = [m for m in models if not method_class(method["name"]).supports(track, m)]
            if bad and method["name"] in named:
                raise UsageError(f"method {method['name']!r} does not run with model {bad[0]!r} on {track} "
                                 f"(it needs {', '.join(method_class(method['name']).models[track])})")
        for d in datasets:
            # the grid's data settings (image_size, split_seed) and recipes are for the grid's own
            # datasets; a dataset named on the command line stays as given unless flags say otherwise
            own = d in grid_datasets
            dataset_extra = {**_image_size(grid if own else {}, ov, tr), **_validation(grid, ov)}
            split_seed = ov.split_seed if ov.split_seed is not None else (int(grid.get("split_seed", 0)) if own else 0)
            d_recipes = recipes if (own or o_recipes) else _recipes_for(d, recipes, tr, notes)
            for (rname, rparams), model, (settings, bud), scale, method, subset, seed in itertools.product(
                    d_recipes, models, variants, scales, methods, subsets, seeds):
                if not method_class(method["name"]).supports(track, model):
                    continue  # 'all' / 'baseline' / 'gan' leave out what cannot run with this model
                # a scale of 1 is not written in: the cells of a profile keep their identity
                scaled = bud if scale == 1 else {**bud, "budget_scale": scale}
                for steps in (gan_steps or [None]) if method["generative"] else [None]:
                    resolved = _with_gan_steps(scaled, steps, profile, method["name"])
                    if skip_short and (resolved.get("gan") or {}).get("undertrained"):
                        skipped.add(method["name"])
                        continue
                    cells.append(_cell(track, d, split_seed, dataset_extra, rname, rparams, method, model, profile,
                                       resolved, subset, seed, settings))
        if skipped:
            notes.append(f"{track}: left out {', '.join(sorted(skipped))} (their generators are under-trained at "
                         f"the {Path(profile).stem} profile's generator budget; name them with --methods to run them)")
    _check_overrides_used(ov, used, tracks)
    if not cells:
        given = [f for f, v in (("--dataset", ov.datasets), ("--recipe", ov.recipes), ("--methods", ov.methods),
                                ("--model", ov.models)) if v]
        if len(given) > 1:
            raise UsageError(f"no grid of this suite takes all of {', '.join(given)} together: their names "
                             f"belong to different tracks ({', '.join(tracks)})")
        raise UsageError("the suite expands to no cells (no grid, recipe, method or seed selected)")
    if ov.image_size is not None and not any("image_size" in c["dataset"] for c in cells):
        raise UsageError("--image-size applies to detection and segmentation datasets; this suite has none")
    return cells


def _cell(track, dataset, split_seed, dataset_extra, rname, rparams, method, model, profile, budget, subset,
          seed, settings=None) -> dict:
    return {
        "track": track,
        "dataset": {"name": dataset, "split_seed": split_seed, **dataset_extra},
        "recipe": {"name": rname, "params": rparams},
        "method": {"name": method["name"], "params": method["params"],
                   **({"code": method["code"]} if method["code"] else {})},
        "model": model,
        # the generative budget belongs only to the cells of generative methods
        "profile": {"name": Path(profile).stem,
                    "budget": budget if method["generative"] else {k: v for k, v in budget.items() if k != "gan"},
                    # a ``budgets`` variant's settings, for the label (absent: the profile as it is)
                    **({"set": {k: budget[k] for k in settings}} if settings else {})},
        "subset_seed": int(subset),
        "seed": int(seed),
    }


def method_gan_steps(gan: dict, method: str) -> int | None:
    """The generator updates a profile's ``gan`` block gives ``method``: its ``steps_by_method``
    entry (a hybrid: its generative part's), else ``steps``."""
    own = gan.get("steps_by_method") or {}
    for name in [method, *split_parts(method)]:
        if name in own:
            return int(own[name])
    return gan.get("steps")


def _with_gan_steps(budget: dict, steps: int | None, profile: str, method: str) -> dict:
    """``budget`` with its generator budget resolved for ``method``: ``steps`` from ``--gan-steps``
    when given, else the method's own (``steps_by_method``), and ``undertrained: true`` where the
    profile lists the method under ``undertrained`` (its generator measured short of its quality at
    4x the updates; the leaderboards say so); the per-method tables themselves are not part of a
    cell (a cell's identity holds the steps it trains with)."""
    gan = budget.get("gan")
    if not isinstance(gan, dict):
        if steps is not None:
            raise UsageError(f"--gan-steps: profile {profile!r} has no 'gan' budget")
        return budget
    resolved = {k: v for k, v in gan.items() if k not in ("steps_by_method", "undertrained")}
    resolved["steps"] = steps if steps is not None else method_gan_steps(gan, method)
    if steps is None and any(n in (gan.get("undertrained") or []) for n in [method, *split_parts(method)]):
        resolved["undertrained"] = True  # measured: its samples at this budget are not near its 4x quality
    return {**budget, "gan": resolved}


def _gan_steps(values: list) -> list[int]:
    """Generator budgets (``--gan-steps``, a grid's ``gan_steps``) checked: whole numbers >= 1."""
    return [int(n) for n in _positive(values, "gan_steps", whole=True)]


def _scales(values: list) -> list[float]:
    """Budget scales checked (positive numbers), in the order given, repeats dropped."""
    return _positive(values, "budget_scale", whole=False)


def _positive(values: list, what: str, whole: bool) -> list[float]:
    """``values`` as finite numbers > 0 (whole numbers >= 1 when ``whole``), in the order given,
    repeats dropped; anything else is a usage error naming ``what``."""
    kind = "a whole number" if whole else "a number"
    out: list[float] = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"{what} must be {kind}, got {v!r}") from None
        if not (math.isfinite(f) and (f.is_integer() and f >= 1 if whole else f > 0)):
            raise UsageError(f"{what} must be {kind} {'>= 1' if whole else '> 0'}, got {v!r}")
        if f not in out:
            out.append(f)
    return out


def _recipes_for(dataset: str, recipes: list[tuple[str, dict]], track, notes: list[str]) -> list[tuple[str, dict]]:
    """The grid's ``recipes`` for a dataset named on the command line: all of them where the
    dataset takes every recipe (image sets), else -- a real scene or label-map set, which takes
    only some -- the dataset's own default recipe (noted): the grid's recipes are made for the
    grid's own data, and a real set named by its user runs as it is."""
    allowed = getattr(track.datasets().get(dataset), "recipes", None)
    if allowed is None:
        return recipes
    default = allowed[0]
    given = sorted({name for name, _ in recipes})
    notes.append(f"dataset {dataset} takes only {', '.join(allowed)} ({track.name}); the suite's "
                 f"{', '.join(given)} are for its own data: it runs {default} (name recipes with --recipe)")
    return [(default, track.resolve_recipe(default, {}))]


def _budget_settings(grid: dict) -> list[dict]:
    """The grid's ``budgets``: a list of mappings (or one mapping), each a variant of the profile's
    budget with those keys set (``profiles.SETTABLE``: the optimizer, lr, momentum, weight decay,
    batch size, warm-up) -- a grid axis, e.g. the optimizers ``imbench run select`` compares;
    absent: ``[{}]``, the profile as it is."""
    value = grid.get("budgets")
    if value is None:
        return [{}]
    items = _listify(value)
    if not items or not all(isinstance(v, dict) for v in items):
        raise UsageError(f"budgets must be a mapping or a list of mappings of budget keys, got {value!r}")
    return [dict(v) for v in items]


def _image_size(grid: dict, ov: Overrides, track) -> dict:
    """``{"image_size": n}`` for the datasets of a resizable track when a size is given
    (``--image-size`` or the grid's ``image_size``), else ``{}`` (the source's own size)."""
    if "image_size" in grid and not track.resizable:
        raise UsageError(f"image_size: the {track.name} track's datasets have a fixed size")
    size = ov.image_size if ov.image_size is not None else grid.get("image_size")
    if size is None or not track.resizable:
        return {}
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UsageError(f"image_size must be a whole number of pixels, got {size!r}") from None
    if size < 16:
        raise UsageError(f"image_size must be at least 16 pixels, got {size}")
    return {"image_size": size}


def _validation(grid: dict, ov: Overrides) -> dict:
    """``{"validation": F}`` when ``--validation`` or the grid's ``validation`` names a fraction in
    (0, 1): the cells train without that share of the recipe's training set and are evaluated on it
    instead of the test split (``data_recipes/validation.py``); 0 or absent: ``{}``."""
    value = ov.validation if ov.validation is not None else grid.get("validation")
    if value is None:
        return {}
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"validation must be a fraction of the training set, got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise UsageError(f"validation must be a fraction in [0, 1) of the training set, got {value:g}")
    return {"validation": value} if value > 0 else {}


def _ints(value, what: str) -> list[int]:
    out = []
    for v in _listify(value):
        out += parse_ints(v, what) if isinstance(v, str) else [int(v)]
    return out


def dedupe(cells: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the distinct cells in first-seen order, the dropped repeats) by ``config_hash``."""
    seen: set[str] = set()
    unique, repeats = [], []
    for cell in cells:
        key = config_hash(cell)
        (repeats if key in seen else unique).append(cell)
        seen.add(key)
    return unique, repeats
