"""What code a method's cells ran: the part of a cell's identity that follows the code.

A built-in method carries ``version`` (a class attribute, raised whenever a change alters its
results). A plugin -- a method loaded from an entry point, ``--plugin module:Class`` or
``--plugin path/file.py:Class`` -- is identified by ``version`` and a hash of its source: the
source of the class and of every class it inherits from outside imbench (a plugin's own base
classes), so editing the plugin makes new cells, and ``--resume`` does not take an old record for
the edited method's. Editing a helper *function* of the plugin's module outside the classes is
not seen; raise ``version`` then.

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

from .contract.method import Method  # noqa: F401  (the type the functions take)

_IMBENCH = "imbench."


def is_builtin(cls: type) -> bool:
    return cls.__module__.startswith(_IMBENCH)


def _parts(cls: type[Method]) -> list[tuple[str, type[Method]]]:
    return list(zip(cls.part_names, cls.part_classes)) if getattr(cls, "part_names", None) else []


def source_hash(cls: type) -> str:
    """sha256 (16 hex) of the source of ``cls`` and of its bases defined outside imbench."""
    digest = hashlib.sha256()
    for base in cls.__mro__:
        if base is object or is_builtin(base) or base.__module__ == "builtins":
            continue
        try:
            text = inspect.getsource(base)
        except (OSError, TypeError):  # no source (built in C, made at run time): its name alone
            text = f"{base.__module__}.{base.__qualname__}"
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def code_identity(cls: type[Method]) -> dict:
    """``{"version": N}`` for a built-in, ``{"version": N, "source": hash}`` for a plugin; a
    hybrid's is its parts' by name."""
    parts = _parts(cls)
    if parts:
        return {name: code_identity(part) for name, part in parts}
    out = {"version": int(getattr(cls, "version", 1))}
    if not is_builtin(cls):
        out["source"] = source_hash(cls)
    return out


def method_code(cls: type[Method]) -> dict:
    """What a record says of the method's code (see the module docstring)."""
    parts = _parts(cls)
    if parts:
        return {name: method_code(part) for name, part in parts}
    out = {"builtin": is_builtin(cls), **code_identity(cls)}
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


def without_code(cell: dict) -> dict:
    """The cell with its method's code identity left out (what a changed method still shares
    with its old records)."""
    method = {k: v for k, v in cell["method"].items() if k != "code"}
    return {**cell, "method": method}
