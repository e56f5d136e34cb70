"""Pixel-level data: segmentation sources (``SEG_SOURCES``, kind ``"dataset"``) returning a
:class:`~..imageset.Source` of :class:`~..segset.SegSet` s. So far: ``seg-folder`` (``images/`` +
``masks/`` + optional ``classes.json``; the real ISBI 2012 membrane set in ``../shared/data`` is one).
"""
from __future__ import annotations

import os

from ...benchmarks.contract.registry import Registry
from ..imageset import Source
from ..sources._common import SourceSpec

SEG_SOURCES: Registry[SourceSpec] = Registry("dataset")
_CACHE: dict[tuple, tuple[tuple, Source]] = {}


def _stamp(source: Source) -> tuple:
    out = []
    for p in source.info.get("files", []):
        try:
            st = os.stat(p)
            out.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((p, None, None))
    return tuple(out)


def load_segset(name: str, *, data_root=None, data_path=None, download: bool = False, split_seed: int = 0,
                test_fraction: float | None = None, image_size: int | None = None) -> Source:
    """Load segmentation source ``name``; cached in-process until a file it read changes."""
    spec = SEG_SOURCES.get(name)
    key = (name, None if data_root is None else os.fspath(data_root),
           None if data_path is None else os.fspath(data_path), bool(download), int(split_seed),
           None if test_fraction is None else float(test_fraction), None if image_size is None else int(image_size))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == _stamp(hit[1]):
        return hit[1]
    source = spec.loader(data_root=data_root, data_path=data_path, download=bool(download),
                         split_seed=int(split_seed), test_fraction=test_fraction, image_size=image_size)
    _CACHE[key] = (_stamp(source), source)
    return source


from . import seg_folder  # noqa: E402,F401  (registers the built-in sources)
