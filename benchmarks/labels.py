"""The labels people read, and the record file names made from them.

Labels are short (non-default parameters only) and unique for a given registry:
``focal:gamma=0.5``, ``smote+ldam-drw``, ``longtail(ir=50)``, ``step(ir=10,mu=0.3)``. They need
the method registry and the track's recipe registry, so they sit above the contract layer
(:mod:`imbench.benchmarks.contract.identity` holds the hashes).
"""
from __future__ import annotations

from pathlib import Path

from ..tasks import TRACKS
from .contract.identity import config_hash, dataset_label, profile_label, spec_label
from .plugins import method_class
from .profiles import profiles
from .suite import method_gan_steps


def method_label(method: dict) -> str:
    """``name[:key=value...]`` with the non-default parameters; hybrids join their parts with ``+``."""
    cls = method_class(method["name"])
    parts = getattr(cls, "part_names", None)
    if parts:
        return "+".join(method_label({"name": n, "params": method["params"].get(n, {})}) for n in parts)
    return ":".join([method["name"], *spec_label(method["name"], method["params"], cls.defaults)])


def recipe_label(recipe: dict, track: str = "classification") -> str:
    """``name(key=value,...)``: ``ir`` always (where the recipe has it), other parameters when
    they differ from the recipe's defaults."""
    recipes = TRACKS.get(track).recipes() if track in TRACKS else {}
    defaults = recipes.get(recipe["name"]).defaults if recipe["name"] in recipes else {}
    keys = spec_label(recipe["name"], recipe["params"], defaults, always=("ir",))
    return f"{recipe['name']}({','.join(keys)})" if keys else recipe["name"]


def gan_steps_label(cell: dict) -> str:
    """``@gan_steps=N`` when a generative cell's generator budget is not its bundled profile's for
    this method (``--gan-steps``): the generator budget belongs to the method's row, not to the block."""
    gan = cell["profile"]["budget"].get("gan")
    if not isinstance(gan, dict) or "steps" not in gan:
        return ""
    bundled = (profiles().get(cell["profile"]["name"]) or {}).get(cell["track"], {}).get("gan")
    if not bundled:  # a profile file: its own steps are not known here (two such cells get a #hash)
        return ""
    return "" if method_gan_steps(bundled, cell["method"]["name"]) == gan["steps"] else f"@gan_steps={gan['steps']}"


def labels(cell: dict) -> dict:
    """The labels a record carries (``dataset``, ``recipe``, ``method``, ``profile``, ``cell``)."""
    out = {"dataset": dataset_label(cell["dataset"]), "recipe": recipe_label(cell["recipe"], cell["track"]),
           "method": method_label(cell["method"]) + gan_steps_label(cell), "profile": profile_label(cell["profile"])}
    subset = f"/d{cell['subset_seed']}" if cell.get("subset_seed") else ""
    out["cell"] = (f"{out['dataset']}/{out['recipe']}/{out['method']}/{cell['model']}/"
                   f"{out['profile']}{subset}/s{cell['seed']}")
    return out


def record_name(cell: dict) -> str:
    """``<track>_<dataset>_<recipe>_<method>_<model>_s<seed>_<config hash>.json`` (readable parts
    from the labels, shortened; the hash is what makes the name unique)."""
    recipe = recipe_label(cell["recipe"], cell["track"]).replace("(", "-").replace(")", "").replace(",", "-").replace("=", "")
    method = method_label(cell["method"]).replace(":", "-").replace("=", "")
    subset = f"d{cell['subset_seed']}-" if cell.get("subset_seed") else ""
    parts = [cell["track"], cell["dataset"]["name"], recipe[:60], method[:60], cell["model"],
             f"{subset}s{cell['seed']}", config_hash(cell)]
    return "_".join(p.replace("/", "-").replace(":", "-") for p in parts) + ".json"


def record_path(out: Path, cell: dict) -> Path:
    return Path(out) / "records" / record_name(cell)
