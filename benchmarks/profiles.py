"""Budget profiles (``smoke``, ``quick``, ``paper``) read from ``profiles.yaml``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from .contract.errors import UsageError, unknown

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
BUDGET_UNITS = ("steps", "epochs")
WARMUP_UNITS = ("steps", "epochs")
PRECISIONS = ("auto", "bf16", "fp32")  # tasks.precision (resolved by the driver; absent = fp32)


@lru_cache(maxsize=None)
def _load(path: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read profiles file {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise UsageError(f"profiles file {path} must map profile names to budgets")
    return data


def profiles() -> dict:
    return _load(str(PROFILES_FILE))


# the keys a suite grid's ``budgets`` variants may set on top of a profile (the protocol's
# optimizer settings; the length of training is ``budget_scale``'s)
SETTABLE = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "warmup_epochs")


def budget(profile: str, track: str, settings: dict | None = None) -> dict:
    """The budgets of ``track`` under ``profile`` (a built-in name or a YAML file path), with
    ``settings`` (keys of :data:`SETTABLE`: a grid's ``budgets`` variant) set over them."""
    if profile.endswith((".yaml", ".yml")):
        data = _load(profile)
        name = Path(profile).stem
        block = data.get(name, data)
    else:
        table = profiles()
        if profile not in table:
            raise unknown("profile", profile, table)
        block = table[profile]
    if track not in block:
        raise UsageError(f"profile {profile!r} has no budgets for track {track!r}")
    out = dict(block[track])
    for key in settings or {}:
        if key not in SETTABLE:
            raise UsageError(f"budgets: {key!r} cannot be set per grid (settable: {', '.join(SETTABLE)})")
    out.update(settings or {})
    for key in ("epochs", "batch_size", "lr"):
        if key not in out:
            raise UsageError(f"profile {profile!r}: the {track} budget needs {key!r}")
    for key, kind in (("epochs", int), ("batch_size", int), ("warmup_epochs", int), ("lr", float),
                      ("momentum", float), ("weight_decay", float)):
        if key in out:
            out[key] = _number(profile, key, out[key], kind)
    out["lr_steps"] = {int(_number(profile, "lr_steps", k, int)): _number(profile, "lr_steps", v, float)
                       for k, v in (out.get("lr_steps") or {}).items()}
    if out.get("lr_poly") is not None:
        out["lr_poly"] = _number(profile, "lr_poly", out["lr_poly"], float)
    from ..tasks import TRACKS  # here, not above: ``imbench ls profiles`` imports no torch
    from ..tasks.schedule import OPTIMIZERS

    # no default written in: a budget that does not name one keeps its identity (sgd)
    if out.get("optimizer", "sgd") not in OPTIMIZERS:
        raise UsageError(f"profile {profile!r}: optimizer must be one of {', '.join(OPTIMIZERS)}, "
                         f"got {out['optimizer']!r}")
    out.setdefault("budget_unit", "steps")
    gan = out.get("gan")
    if isinstance(gan, dict):
        gan = out["gan"] = dict(gan)
        if "steps" in gan:
            gan["steps"] = _number(profile, "gan steps", gan["steps"], int)
        gan["steps_by_method"] = {str(k): _number(profile, f"gan steps_by_method {k}", v, int)
                                  for k, v in (gan.get("steps_by_method") or {}).items()}
        if not gan["steps_by_method"]:
            del gan["steps_by_method"]
        if not isinstance(gan.get("undertrained", []), list):
            raise UsageError(f"profile {profile!r}: gan undertrained must be a list of method names")
    if out.get("precision", "fp32") not in PRECISIONS:
        raise UsageError(f"profile {profile!r}: precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {out['precision']!r}")
    if out.get("warmup_epochs", 0) > 0:
        # written in: the per-step warm-up replaced a per-epoch one, so a budget with a warm-up
        # names its unit (old records of per-epoch warm-ups are never resumed as per-step ones)
        out.setdefault("warmup_unit", "steps")
        if out["warmup_unit"] not in WARMUP_UNITS:
            raise UsageError(f"profile {profile!r}: warmup_unit must be one of {', '.join(WARMUP_UNITS)}, "
                             f"got {out['warmup_unit']!r}")
    out.setdefault("augment", "none")
    if out["budget_unit"] not in BUDGET_UNITS:
        raise UsageError(f"profile {profile!r}: budget_unit must be one of {', '.join(BUDGET_UNITS)}, "
                         f"got {out['budget_unit']!r}")
    policies = TRACKS.get(track).augment_policies if track in TRACKS else ("none",)
    if out["augment"] not in policies:
        raise UsageError(f"profile {profile!r}: the {track} augment must be one of {', '.join(policies)}, "
                         f"got {out['augment']!r}")
    return out


def _number(profile: str, key: str, value, kind):
    """``value`` as ``kind`` (YAML reads ``1e-3`` as text; ``10.0`` epochs is 10), so one budget
    written two ways is one budget; a bad value is a usage error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"profile {profile!r}: {key} must be a number, got {value!r}") from None
    if kind is int:
        if not number.is_integer():
            raise UsageError(f"profile {profile!r}: {key} must be a whole number, got {value!r}")
        return int(number)
    return number
