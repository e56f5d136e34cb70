"""The in-process cache every track's source loader goes through.

The same arguments return the same ``Source`` object (callers treat it as read-only) until one
of the files it was read from -- or the folder holding such a file -- changes on disk (its
``info["files"]``: path, mtime, size).
"""
from __future__ import annotations

import os

from .imageset import Source

_CACHE: dict[tuple, tuple[tuple, Source]] = {}


def _stamp(source: Source) -> tuple:
    """(path, mtime, size) of the files a source read and of their folders, so that a cached
    source is reloaded when a file on disk changes or a split's file appears or disappears."""
    paths = list(source.info.get("files", []))
    paths += sorted({os.path.dirname(p) for p in paths if os.path.isfile(p)})
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((p, None, None))
    return tuple(out)


def _normal(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def cached_load(registry, name: str, **kwargs) -> Source:
    """``registry.get(name).loader(**kwargs)``, cached by (registry kind, name, arguments)."""
    spec = registry.get(name)
    key = (registry.kind, id(registry), name, tuple(sorted((k, _normal(v)) for k, v in kwargs.items())))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == _stamp(hit[1]):
        return hit[1]
    source = spec.loader(**kwargs)
    _CACHE[key] = (_stamp(source), source)
    return source


def clear_cache() -> None:
    """Forget every cached ``Source`` (tests, or after the files on disk changed)."""
    _CACHE.clear()
