"""Pixel-level imbalance recipes (``SEG_RECIPES``) and :func:`apply_seg_recipe`.

Counts are *pixel* counts (void left out). On a source that composes scenes (``digit-scenes``,
``mnist-scenes``) a recipe composes its training scenes with the detection track's scene recipe
of the same design -- exact object counts, seeded -- and turns them into label maps; on the
other sources (real layouts, ``seg-folder``) only ``natural`` works.

* ``natural``: the source's training split unchanged. Minority: the classes whose pixel count is
  below the geometric midpoint ``sqrt(max * min)`` of the pixel counts of the classes that have
  pixels (ISBI 2012: membrane). A class with no training pixel (a gap in a folder's mask values,
  a class a small split misses) cannot be learnt: it is not a minority class but listed in
  ``info["absent_classes"]`` (with it the midpoint would be 0 and no class a minority).
* ``rare-pixels``: a long tail over the digit classes by pixel share: the scene recipe
  ``rare-class`` (``profile=longtail``/``step``, ``ir``, ``n_max`` objects of the head class, ...)
  sets the object count of every digit class; sizes are even over the size buckets in every
  class, so each class's pixel share follows the profile. Background is not part of the profile.
  Minority: the digit classes ``rare-class`` calls minority (below the midpoint of the targets).
  ``info`` records the pixel counts reached and the pixel imbalance ratio among digit classes
  (max / min pixel count, ``pixel_ir``) beside the object counts asked.
* ``fg-bg``: the background share: ``floor(empty_share * n_images)`` images hold no digit at all,
  the others ``objects_per_image`` digits (scene recipe ``fg-bg``). Minority: every digit class
  (all are rare against background); ``info["background_share"]`` is the share of background pixels.
* ``occlusion``: per digit class ``n_per_class`` unoccluded objects and ``n_per_class / ir`` heavily
  occluded ones, whose visible pixels are what is labelled (scene recipe ``occlusion``). Minority:
  none (rare-class IoU is null); ``info["minority_buckets"] = ["heavy"]``.

The test split is the source's, untouched. Deterministic for (source, recipe, params, seed).
"""
from __future__ import annotations

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..recipes import Imbalanced, RecipeSpec, midpoint_minority
from ..scenes.recipes import apply_scene_recipe, resolve_scene_recipe
from ..scenes import SCENE_RECIPES
from ..segset import SegSet
from . import SEG_RECIPES

COMPOSED = {"rare-pixels": "rare-class", "fg-bg": "fg-bg", "occlusion": "occlusion"}


def _composed_minority(name: str, scene_minority: list[int], num_classes: int) -> list[int]:
    if name == "rare-pixels":
        return [c + 1 for c in scene_minority]
    if name == "fg-bg":
        return list(range(1, num_classes))
    return []


def _register(name: str, scene: str | None, summary: str, reference: str) -> None:
    spec = SCENE_RECIPES.get(scene) if scene else None
    defaults = dict(spec.defaults) if spec else {}
    SEG_RECIPES.register(name, RecipeSpec(name, None, defaults, summary, reference, ("segmentation",), None))


_register("natural", None, "the source's training split unchanged", "the source's own training split")
_register("rare-pixels", "rare-class",
          "long tail over the digit classes by pixel share (object counts by the longtail or step profile, "
          "sizes even per class)",
          "Cao et al. 2019 / Buda et al. 2018 profiles over classes; pixel imbalance as in "
          "Sudre et al. 2017 (generalised Dice)")
_register("fg-bg", "fg-bg", "background share: floor(empty_share * n_images) images hold no digit",
          "Lin et al. 2017 (foreground-background imbalance); Milletari et al. 2016 (V-Net Dice)")
_register("occlusion", "occlusion",
          "per class n_per_class unoccluded digits and n_per_class/ir heavily occluded (visible pixels labelled)",
          "Zhang et al. 2018, Occlusion-aware R-CNN; Oksuz et al. 2020 imbalance survey")


def resolve_seg_recipe(name: str, params: dict | None = None) -> dict:
    """Recipe ``name``'s full parameters (the scene recipe's defaults and checks); idempotent."""
    SEG_RECIPES.get(name)
    scene = COMPOSED.get(name)
    params = dict(params or {})
    if scene is None:
        if params:
            raise UsageError(f"recipe {name}: unknown parameter{'s' if len(params) > 1 else ''} "
                             f"{', '.join(sorted(params))} (known: none)")
        return {}
    try:
        return resolve_scene_recipe(scene, params)
    except UsageError as exc:
        raise UsageError(str(exc).replace(f"recipe {scene}", f"recipe {name}")) from None


def apply_seg_recipe(source: Source, name: str, params: dict | None, seed: int) -> Imbalanced:
    """The imbalanced training label maps of ``source`` with segmentation recipe ``name``."""
    params = resolve_seg_recipe(name, params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"recipe {name}: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(source.train, SegSet):
        raise UsageError(f"recipe {name} is a segmentation recipe; source {source.name!r} has no label maps")
    scene = COMPOSED.get(name)
    extra: dict = {}
    if scene is None:
        train, index = source.train, np.arange(len(source.train))
        pixels = train.pixel_counts()
        present = [c for c, n in enumerate(pixels) if n > 0]
        minority = [present[i] for i in midpoint_minority([pixels[c] for c in present])] if len(present) > 1 else []
        extra = {"absent_classes": [c for c, n in enumerate(pixels) if n == 0]}
    else:
        composer = source.composer
        if composer is None or not hasattr(composer, "scenes"):
            raise UsageError(f"recipe {name} composes scenes (digit-scenes, mnist-scenes); source "
                             f"{source.name!r} can only use natural")
        imb = apply_scene_recipe(composer.scenes, scene, params, int(seed))
        train, index = composer.to_segset(imb.train), None
        minority = _composed_minority(name, list(imb.minority), train.num_classes)
        extra = {"scene_recipe": scene, "object_counts": imb.counts,
                 **{k: v for k, v in imb.info.items()
                    if k in ("asked", "reached", "profile", "class_order", "minority_buckets", "empty_asked",
                             "foreground_images", "size_buckets", "occlusion_buckets")}}
    counts = train.pixel_counts()
    if not sum(counts):
        raise UsageError(f"recipe {name}: the training set has no labelled pixel")
    fg = counts[1:] if scene is not None else counts
    positive = [n for n in fg if n > 0]
    info = {
        "recipe": name, "params": dict(params), "seed": int(seed), "source": source.name,
        "counts": counts, "pixel_counts": counts, "image_counts": train.image_counts(),
        "minority": list(minority), "n_images": len(train),
        "background_share": (counts[0] / sum(counts)) if scene is not None else None,
        "pixel_ir": (max(positive) / min(positive)) if positive else None,
        "subset_fingerprint": train.fingerprint(), **extra,
    }
    return Imbalanced(train, source.test, list(train.class_names), counts, list(minority), params, info, index)
