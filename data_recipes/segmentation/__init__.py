"""Pixel-level data: segmentation sources (``SEG_SOURCES``, kind ``"dataset"``) returning a
:class:`~..imageset.Source` of :class:`~..segset.SegSet` s, and the pixel-level recipes
(``SEG_RECIPES``, :mod:`.recipes`). Sources: ``digit-scenes`` / ``mnist-scenes`` (the scene
sources with per-pixel labels), ``seg-folder`` (``images/`` + ``masks/`` + optional
``classes.json``; the real ISBI 2012 membrane set in ``../shared/data`` is one).
"""
from __future__ import annotations

from ...benchmarks.contract.registry import Registry
from ..imageset import Source
from ..source_cache import cached_load
from ..sources._common import SourceSpec

SEG_SOURCES: Registry[SourceSpec] = Registry("dataset")
SEG_RECIPES: Registry = Registry("recipe")


def load_segset(name: str, *, data_root=None, data_path=None, download: bool = False, split_seed: int = 0,
                test_fraction: float | None = None, image_size: int | None = None) -> Source:
    """Load segmentation source ``name``; cached in-process until a file it read changes."""
    return cached_load(SEG_SOURCES, name, data_root=data_root, data_path=data_path, download=bool(download),
                       split_seed=int(split_seed), test_fraction=None if test_fraction is None else float(test_fraction),
                       image_size=None if image_size is None else int(image_size))


from . import camvid, cityscapes, digit_scenes, recipes, seg_folder, voc_seg  # noqa: E402,F401  (registers the built-in sources and recipes)
