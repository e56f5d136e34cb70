"""A cell's identity and the short labels people read.

A *cell* is one resolved configuration (see ``suite.expand``)::

    {"track", "dataset": {"name", "split_seed", "fingerprint"}, "recipe": {"name", "params"},
     "method": {"name", "params", "code"}, "model", "profile": {"name", "budget"}, "subset_seed", "seed"}

Its identity, ``config_hash(cell)``, is a hash of all of it: the method and recipe with every
parameter resolved (defaults filled in, numbers converted to the default's type, so ``gamma: 1``
in YAML and ``gamma=1.0`` on the command line are one cell), the data (dataset name, the content
fingerprint of the train/test split actually read, split seed), the model, the budget's content,
the subset seed and the seed, and the method's code (``method.code``): a built-in's ``version``
once raised above 1 (raised whenever a change alters its results) and, for a plugin, its version
and a hash of its module's source (``imbench.benchmarks.code``). The git
SHA of imbench is recorded but is not part of it.

A *setting* is a cell without its seeds (``seed``, ``subset_seed``): the cells of one setting
are the repetitions a leaderboard row averages. ``setting_hash`` is its identity.

The labels people read (``focal:gamma=0.5``, ``longtail(ir=50)``) need the method and recipe
registries, so they live a layer up, in :mod:`imbench.benchmarks.labels`; this module holds only
the hashes and the formatting every layer may use.
"""
from __future__ import annotations

import hashlib
import json

SEED_KEYS = ("seed", "subset_seed")


def config_hash(config: dict) -> str:
    """A stable hash of a resolved configuration (sorted JSON, sha256, 16 hex)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def without_code(cell: dict) -> dict:
    """The cell without its method's code identity (``method.code``): what a record of the same
    cell made by other code shares with it."""
    method = {k: v for k, v in cell["method"].items() if k != "code"}
    return {**cell, "method": method}


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


def dataset_label(dataset: dict) -> str:
    """The dataset's name; ``split_seed`` when it is not the default 0, ``image_size`` when set and
    ``validation`` (the fraction carved from training to evaluate on instead of test) when set."""
    extra = [f"split_seed={dataset['split_seed']}"] if dataset.get("split_seed", 0) else []
    extra += [f"image_size={dataset['image_size']}"] if dataset.get("image_size") is not None else []
    extra += [f"validation={format_value(float(dataset['validation']))}"] if dataset.get("validation") else []
    return dataset["name"] if not extra else f"{dataset['name']}({','.join(extra)})"


def profile_label(profile: dict) -> str:
    """The profile's name; a grid's ``budgets`` settings, its budget unit when it is not the default
    ``steps``, its precision when it names one and its budget scale when it is not 1: ``quick``,
    ``quick(precision=bf16,budget_scale=4)``, ``quick(optimizer=sgd,lr=0.1)``."""
    budget = profile.get("budget", {})
    extra = [f"{k}={format_value(v)}" for k, v in (profile.get("set") or {}).items()]  # a ``budgets`` variant
    extra += [f"budget_unit={budget['budget_unit']}"] if budget.get("budget_unit", "steps") != "steps" else []
    extra += [f"precision={budget['precision']}"] if budget.get("precision") else []
    extra += [f"budget_scale={format_value(float(budget['budget_scale']))}"] if budget.get("budget_scale", 1) != 1 else []
    return profile["name"] if not extra else f"{profile['name']}({','.join(extra)})"
