"""Budget profiles (``smoke``, ``quick``, ``paper``) read from ``profiles.yaml``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from .errors import UsageError, unknown

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


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


def budget(profile: str, track: str) -> dict:
    """The budgets of ``track`` under ``profile`` (a built-in name or a YAML file path)."""
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
    return dict(block[track])
