"""Object-level data: scene sources (embedded and real) and their imbalance recipes.

Sources (``SCENE_SOURCES``, kind ``"dataset"``; each a :class:`~..sources._common.SourceSpec`
whose loader also takes ``image_size``) return a :class:`~..imageset.Source` whose ``train`` and
``test`` are :class:`~..sceneset.SceneSet` s and whose ``info`` holds at least ``files``,
``split``, ``class_names``, ``sizes``, ``fingerprint`` and ``area_ranges`` (the COCO size
buckets ``{"small": [lo, hi], "medium": [...], "large": [...]}`` in the units of the targets'
``area``). A source that can compose new scenes (``digit-scenes``) also sets
``Source.composer``; recipes use it to build training scenes with exact counts, and select
training images of the others.

Recipes (``SCENE_RECIPES``) follow the classification recipes' contract: ``apply_scene_recipe``
returns an :class:`~..recipes.Imbalanced` whose ``counts`` are per-class *instance* counts and
whose ``info`` records what was asked and what was reached.
"""
from __future__ import annotations

from ...benchmarks.contract.registry import Registry
from ..imageset import Source
from ..source_cache import cached_load
from ..recipes import RecipeSpec
from ..sources._common import SourceSpec

SCENE_SOURCES: Registry[SourceSpec] = Registry("dataset")
SCENE_RECIPES: Registry[RecipeSpec] = Registry("recipe")


def load_scenes(name: str, *, data_root=None, data_path=None, download: bool = False, split_seed: int = 0,
                test_fraction: float | None = None, image_size: int | None = None) -> Source:
    """Load scene source ``name``; cached in-process until a file it read changes on disk."""
    return cached_load(SCENE_SOURCES, name, data_root=data_root, data_path=data_path, download=bool(download),
                       split_seed=int(split_seed), test_fraction=None if test_fraction is None else float(test_fraction),
                       image_size=None if image_size is None else int(image_size))


from . import coco, digit_scenes, recipes, voc  # noqa: E402,F401  (register the built-in sources and recipes)
