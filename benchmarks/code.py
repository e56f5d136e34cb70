"""What code a method's cells ran: the part of a cell's identity that follows the code.

A built-in method carries ``version`` (a class attribute, raised whenever a change alters its
results; version 1 adds nothing to the cell, so untouched methods keep their identities). A
plugin -- a method loaded from an entry point, ``--plugin module:Class`` or ``--plugin
path/file.py:Class`` -- is identified by ``version`` and a hash of its source: the whole module
that defines the class (and those of the classes it inherits from outside imbench), so editing
the plugin's file -- its loss class, a constant -- makes new cells, and ``--resume`` does not take
an old record for the edited method's. Code the plugin imports from another module is not
hashed; raise ``version`` when that changes results.

``code_identity(cls)`` goes into the cell (``method.code``) and so into ``config_hash``;
``method_code(cls)`` goes into the record (``method_code``): the identity plus, for a plugin, its
distribution and version (where installed as a package), module and file.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from functools import lru_cache
from importlib.metadata import packages_distributions, version as dist_version
from pathlib import Path

from .contract.method import Method

_IMBENCH = "imbench."


def is_builtin(cls: type) -> bool:
    return cls.__module__.startswith(_IMBENCH)


def _parts(cls: type[Method]) -> list[tuple[str, type[Method]]]:
    return list(zip(cls.part_names, cls.part_classes)) if getattr(cls, "part_names", None) else []


def source_hash(cls: type) -> str:
    """sha256 (16 hex) of the source of the *modules* that define ``cls`` and its bases outside
    imbench: the class, its helper classes and functions, module constants -- any edit of the
    plugin's file changes it."""
    digest = hashlib.sha256()
    seen: set[str] = set()
    for base in cls.__mro__:
        if base is object or is_builtin(base) or base.__module__ == "builtins" or base.__module__ in seen:
            continue
        seen.add(base.__module__)
        module = sys.modules.get(base.__module__)
        try:
            text = inspect.getsource(module) if module is not None else inspect.getsource(base)
        except (OSError, TypeError):  # no source (built in C, made at run time): its name alone
            text = f"{base.__module__}.{base.__qualname__}"
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def code_identity(cls: type[Method]) -> dict:
    """What of the method's code enters the cell: ``{}`` for a built-in at version 1 (so the cells
    of methods no change has touched keep the identities they had before versions existed),
    ``{"version": N}`` for a built-in raised to N, ``{"version": N, "source": hash}`` for a
    plugin; a hybrid's is its parts' by name (``{}`` when none has any)."""
    parts = _parts(cls)
    if parts:
        out = {name: code_identity(part) for name, part in parts}
        return out if any(out.values()) else {}
    version = int(getattr(cls, "version", 1))
    if is_builtin(cls):
        return {} if version == 1 else {"version": version}
    return {"version": version, "source": source_hash(cls)}


def method_code(cls: type[Method]) -> dict:
    """What a record says of the method's code (see the module docstring)."""
    parts = _parts(cls)
    if parts:
        return {name: method_code(part) for name, part in parts}
    out = {"builtin": is_builtin(cls), "version": int(getattr(cls, "version", 1)), **code_identity(cls)}
    if out["builtin"]:
        return out
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    top = cls.__module__.split(".")[0]
    dists = _distributions(tuple(sys.path)).get(top, [])
    out.update(module=cls.__module__, qualname=cls.__qualname__,
               file=str(Path(path).resolve()) if path else None,
               distribution=dists[0] if dists else None,
               distribution_version=_dist_version(dists[0]) if dists else None)
    return out


@lru_cache(maxsize=4)
def _distributions(path: tuple) -> dict:  # keyed by sys.path: what is installed where
    return packages_distributions()


def _dist_version(name: str) -> str | None:
    try:
        return dist_version(name)
    except Exception:  # noqa: BLE001 - metadata of an odd install
        return None


