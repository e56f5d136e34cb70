"""A cell's identity and the short labels people read.

A *cell* is one resolved configuration (see ``suite.expand``)::

    {"track", "dataset": {"name", "split_seed", "fingerprint"}, "recipe": {"name", "params"},
     "method": {"name", "params"}, "model", "profile": {"name", "budget"}, "subset_seed", "seed"}

Its identity, ``config_hash(cell)``, is a hash of all of it: the method and recipe with every
parameter resolved (defaults filled in, numbers converted to the default's type, so ``gamma: 1``
in YAML and ``gamma=1.0`` on the command line are one cell), the data (dataset name, the content
fingerprint of the train/test split actually read, split seed), the model, the budget's content,
the subset seed and the seed. The code version (git SHA) is recorded but is not part of it.

A *setting* is a cell without its seeds (``seed``, ``subset_seed``): the cells of one setting
are the repetitions a leaderboard row averages. ``setting_hash`` is its identity.

Labels are short (non-default parameters only) and unique for a given registry:
``focal:gamma=0.5``, ``smote+ldam-drw``, ``longtail(ir=50)``, ``step(ir=10,mu=0.3)``.
"""
from __future__ import annotations

import hashlib
import json

SEED_KEYS = ("seed", "subset_seed")


def config_hash(config: dict) -> str:
    """A stable hash of a resolved configuration (sorted JSON, sha256, 16 hex)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def setting_of(cell: dict) -> dict:
    """The cell without its seeds."""
    return {k: v for k, v in cell.items() if k not in SEED_KEYS}


def setting_hash(cell: dict) -> str:
    return config_hash(setting_of(cell))


def format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def spec_label(name: str, params: dict, defaults: dict, always: tuple[str, ...] = ()) -> list[str]:
    """``key=value`` for the parameters in ``always`` (first) and those that differ from
    ``defaults``, in the order given."""
    keys = [k for k in always if k in params]
    keys += [k for k in params if k not in always and (k not in defaults or defaults[k] != params[k])]
    return [f"{k}={format_value(params[k])}" for k in keys]


def method_label(method: dict) -> str:
    """``name[:key=value...]`` with the non-default parameters; hybrids join their parts with ``+``."""
    from .plugins import method_class

    cls = method_class(method["name"])
    parts = getattr(cls, "part_names", None)
    if parts:
        return "+".join(method_label({"name": n, "params": method["params"].get(n, {})}) for n in parts)
    return ":".join([method["name"], *spec_label(method["name"], method["params"], cls.defaults)])


def recipe_label(recipe: dict) -> str:
    """``name(key=value,...)``: ``ir`` always (where the recipe has it), other parameters when
    they differ from the recipe's defaults."""
    from ..data_recipes.recipes import RECIPES

    defaults = RECIPES.get(recipe["name"]).defaults if recipe["name"] in RECIPES else {}
    keys = spec_label(recipe["name"], recipe["params"], defaults, always=("ir",))
    return f"{recipe['name']}({','.join(keys)})" if keys else recipe["name"]


def dataset_label(dataset: dict) -> str:
    """The dataset's name; ``split_seed`` when it is not the default 0."""
    seed = dataset.get("split_seed", 0)
    return dataset["name"] if not seed else f"{dataset['name']}(split_seed={seed})"


def profile_label(profile: dict) -> str:
    """The profile's name; its budget unit when it is not the default ``steps``."""
    unit = profile.get("budget", {}).get("budget_unit", "steps")
    return profile["name"] if unit == "steps" else f"{profile['name']}(budget_unit={unit})"


def labels(cell: dict) -> dict:
    """The labels a record carries (``dataset``, ``recipe``, ``method``, ``profile``, ``cell``)."""
    out = {"dataset": dataset_label(cell["dataset"]), "recipe": recipe_label(cell["recipe"]),
           "method": method_label(cell["method"]), "profile": profile_label(cell["profile"])}
    subset = f"/d{cell['subset_seed']}" if cell.get("subset_seed") else ""
    out["cell"] = (f"{out['dataset']}/{out['recipe']}/{out['method']}/{cell['model']}/"
                   f"{out['profile']}{subset}/s{cell['seed']}")
    return out
