"""Detection imbalance recipes (``SCENE_RECIPES``) and :func:`apply_scene_recipe`.

Counts are *instance* (object) counts. With a source that can compose scenes
(``Source.composer``, ``digit-scenes``) every recipe builds a fresh training set with exact
counts; on other sources (real VOC / COCO sets) only ``natural`` and ``rare-class`` work, the
latter by selecting training images.

* ``natural``: the source's training split unchanged. Minority (what ``rare_ap`` averages): the
  classes whose instance count is below the geometric midpoint ``sqrt(max * min)`` of the counts
  of the classes that have instances, as the segmentation ``natural`` does by pixels (a balanced
  set has none); a class without a training instance cannot be learnt and is listed in
  ``info["absent_classes"]`` instead.
* ``rare-class``: a long tail over classes: ``profile=longtail`` gives position ``p`` the count
  ``int(n_max * (1/ir) ** (p / (C - 1)))`` (the classification ``longtail``), ``profile=step``
  the last ``floor(mu * C)`` positions ``floor(n_max / ir)``; ``class_order`` maps positions to
  classes as in the classification recipes -- ``random`` by default here (a permutation seeded by
  the subset seed, recorded in ``info["class_order"]``): with ``index`` the rare classes were
  always the digits 5-9, so rarity was confounded with how hard those digits are to tell apart;
  ``class_order=index`` gives that order back. Composed: the list of all instances is shuffled
  (seeded) and cut into images of 1..``max_objects`` objects; sizes are even over the buckets
  and occlusion 60/20/20 none/partial/heavy in each class, like the balanced source. Selected
  (no composer): images are taken greedily -- rarest target first, each class's images in a
  seeded order -- and an image is kept only if it pushes no class above its target; images
  without objects are never kept; ``info`` records ``asked`` and ``reached`` (reached <= asked).
  Minority: ``longtail``, classes whose target is below ``sqrt(max * min)`` of the targets;
  ``step``, the reduced classes.
* ``small-objects``: scale skew. Every class gets ``n_per_class`` objects in each frequent size
  bucket and ``floor(n_per_class / ir)`` in ``rare_bucket`` (small). Minority classes: none;
  ``info["minority_buckets"] = [rare_bucket]``.
* ``occlusion``: every class gets ``n_per_class`` unoccluded objects and
  ``floor(n_per_class / ir)`` heavily occluded ones (occlusion in [0.3, 0.6)); sizes even.
  Minority classes: none; ``info["minority_buckets"] = ["heavy"]``.
* ``fg-bg``: ``n_images`` images, ``floor(empty_share * n_images)`` of them without any object,
  the others with ``objects_per_image`` objects each (classes as even as the total allows,
  sizes / occlusion like the balanced source). Minority classes: none.

Determinism: each random choice draws from ``np.random.default_rng(SeedSequence([seed,
stream, ...]))``; composed images also depend on the recipe name (the composer's prefix).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..interclass import longtail_counts, step_counts
from ..recipes import (
    CLASS_ORDERS,
    Imbalanced,
    RecipeSpec,
    SeededContext,
    _convert,
    check_range,
    floor,
    midpoint_minority,
)
from ..sceneset import SceneSet
from . import SCENE_RECIPES
from .compose import SIZE_BUCKETS, bucket_counts, cut_into_images, object_specs
from .digit_scenes import TRAIN_OCCLUSION_SHARES

PLAN_STREAM, SELECT_STREAM = 11, 12  # the class-order stream (0) is SeededContext's
PROFILES = ("longtail", "step")
MAX_OBJECTS_LIMIT = 6
FG_MAX_OBJECTS = 3
TRACKS = ("detection",)  # the segmentation track has its own recipes (data_recipes/segmentation/recipes.py)


@dataclass
class SceneSelection:
    """What a scene recipe function returns: the training ``train`` set, the ``minority``
    classes, recipe-specific ``info`` and, when ``train`` is a subset of the source's
    training split, ``index`` (sorted source indices)."""

    train: SceneSet
    minority: list[int]
    info: dict = field(default_factory=dict)
    index: np.ndarray | None = None


class SceneContext(SeededContext):
    """The inputs of a scene recipe (also the source's composer) and the seeded helpers they share."""

    def __init__(self, source: Source, name: str, params: dict, seed: int):
        super().__init__(source, name, params, seed)
        self.composer = source.composer

    def need_composer(self):
        if self.composer is None:
            raise UsageError(f"recipe {self.name} needs a source that can compose scenes (digit-scenes); "
                             f"source {self.source.name!r} can only use natural or rare-class")
        return self.composer

    def compose(self, plans: list) -> SceneSet:
        return self.composer.compose(plans, self.seed, prefix=self.name)


def register_scene_recipe(name: str, *, defaults: dict, summary: str, reference: str = "",
                          tracks: tuple[str, ...] = TRACKS, check=None, origin: str = "builtin"):
    """Decorator registering ``fn(ctx: SceneContext) -> SceneSelection`` in ``SCENE_RECIPES``."""
    def add(fn):
        SCENE_RECIPES.register(name, RecipeSpec(name, fn, dict(defaults), summary, reference,
                                                tuple(tracks), check), origin=origin)
        return fn
    return add


# ---------------------------------------------------------------- parameters

def resolve_scene_recipe(name: str, params: dict | None = None) -> dict:
    """The full parameter dict of scene recipe ``name``: defaults filled in, values (CLI
    strings too) converted to the default's type, data-free range checks applied. Idempotent."""
    spec = SCENE_RECIPES.get(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise UsageError(f"recipe {name}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} (known: {', '.join(spec.defaults) or 'none'})")
    out = {k: _convert(name, k, params[k], d) if k in params else d for k, d in spec.defaults.items()}
    if "class_order" in out and out["class_order"] not in CLASS_ORDERS:
        raise UsageError(f"recipe {name}: class_order must be one of {', '.join(CLASS_ORDERS)}, "
                         f"got {out['class_order']!r}")
    if spec.check is not None:
        spec.check(out, params)
    return out


def _check_choice(recipe: str, p: dict, key: str, choices) -> None:
    if p[key] not in choices:
        raise UsageError(f"recipe {recipe}: {key} must be one of {', '.join(choices)}, got {p[key]!r}")


def _check_max_objects(recipe: str, p: dict, key: str = "max_objects") -> None:
    if not 1 <= p[key] <= MAX_OBJECTS_LIMIT:
        raise UsageError(f"recipe {recipe}: {key} must be in [1, {MAX_OBJECTS_LIMIT}], got {p[key]}")


def _check_rare_count(recipe: str, p: dict, what: str) -> None:
    if p["n_per_class"] < 1:
        raise UsageError(f"recipe {recipe}: n_per_class must be >= 1, got {p['n_per_class']}")
    if floor(p["n_per_class"] / p["ir"]) < 1:
        raise UsageError(f"recipe {recipe}: n_per_class {p['n_per_class']} at ir {p['ir']:g} leaves "
                         f"{what} 0 objects per class; use n_per_class >= {math.ceil(p['ir'])} or a smaller ir")


# ---------------------------------------------------------------- natural

@register_scene_recipe("natural", defaults={},
                       summary="the source's training split unchanged (balanced for digit-scenes)",
                       reference="the source's own training split")
def natural(ctx: SceneContext) -> SceneSelection:
    counts = list(ctx.train.instance_counts())
    present = [c for c, n in enumerate(counts) if n > 0]
    minority = [present[i] for i in midpoint_minority([counts[c] for c in present])] if len(present) > 1 else []
    return SceneSelection(ctx.train, minority, {"absent_classes": [c for c, n in enumerate(counts) if n == 0]},
                          np.arange(len(ctx.train)))


# ---------------------------------------------------------------- rare-class

def _check_rare_class(p: dict, given: dict) -> None:
    check_range("rare-class", p, "ir", 1)
    _check_choice("rare-class", p, "profile", PROFILES)
    check_range("rare-class", p, "mu", 0, 1)
    if p["n_max"] < 1:
        raise UsageError(f"recipe rare-class: n_max (instances of the head class) must be >= 1, got {p['n_max']}")
    _check_max_objects("rare-class", p)


def rare_class_targets(n_max: int, num_classes: int, p: dict) -> list[int]:
    """Per-position instance targets of ``rare-class``."""
    if p["profile"] == "longtail":
        return longtail_counts(n_max, num_classes, p["ir"])
    return step_counts(n_max, num_classes, p["ir"], p["mu"])


@register_scene_recipe(
    "rare-class",
    defaults={"ir": 10.0, "profile": "longtail", "mu": 0.5, "n_max": 240, "class_order": "random",
              "max_objects": 4},
    check=_check_rare_class,
    summary="class long tail over object instances (longtail or step profile); exact when composed, "
            "greedy image selection on real sets",
    reference="Cao et al. 2019 (LDAM-DRW) / Buda et al. 2018 profiles on instances; "
              "Gupta et al. 2019 (LVIS) for long-tailed detection")
def rare_class(ctx: SceneContext) -> SceneSelection:
    p, C = ctx.params, ctx.num_classes
    per_pos = rare_class_targets(p["n_max"], C, p)
    by_class = {ctx.order[i]: n for i, n in enumerate(per_pos)}
    asked = [by_class[c] for c in range(C)]
    zero = [c for c in range(C) if asked[c] < 1]
    if zero:
        raise UsageError(f"recipe rare-class: class {ctx.class_label(zero[0])} would get 0 objects "
                         f"(n_max {p['n_max']}, ir {p['ir']:g}); use a larger n_max or a smaller ir")
    if p["profile"] == "longtail":
        minority = midpoint_minority(asked)
    else:
        minority = sorted(c for c in range(C) if asked[c] < p["n_max"])
    info = {"profile": per_pos, "asked": asked}
    if ctx.composer is not None:
        rng = ctx.rng(PLAN_STREAM)
        labels = np.repeat(np.arange(C), asked)
        specs = object_specs(labels, rng, occlusion_shares=TRAIN_OCCLUSION_SHARES)
        train = ctx.compose(cut_into_images(specs, p["max_objects"], rng))
        info |= {"mode": "composed", "reached": train.instance_counts()}
        return SceneSelection(train, minority, info)
    index, reached = select_images(ctx, asked)
    empty = [c for c in range(C) if reached[c] == 0]
    if empty:
        raise UsageError(f"recipe rare-class: no training image of source {ctx.source.name!r} could "
                         f"give class {ctx.class_label(empty[0])} an object without passing another "
                         f"class's target; use a larger n_max or a smaller ir")
    info |= {"mode": "selected", "reached": reached,
             "source_counts": ctx.train.instance_counts()}
    return SceneSelection(ctx.train.subset(index), minority, info, index)


def select_images(ctx: SceneContext, asked: list[int]) -> tuple[np.ndarray, list[int]]:
    """Greedy, seeded image selection toward ``asked`` instance counts (sorted kept indices,
    reached counts): classes in ascending target order; for each, its images in a seeded
    order, each kept if no class passes its target; stop when the class reaches its target."""
    C = ctx.num_classes
    per_image = np.stack([np.bincount(t["labels"].numpy(), minlength=C) for t in ctx.train.targets]) \
        if len(ctx.train) else np.zeros((0, C), dtype=np.int64)
    target = np.asarray(asked, dtype=np.int64)
    reached = np.zeros(C, dtype=np.int64)
    kept = np.zeros(len(per_image), dtype=bool)
    for c in sorted(range(C), key=lambda c: (asked[c], c)):
        holders = np.flatnonzero(per_image[:, c] > 0)
        for i in ctx.rng(SELECT_STREAM, c).permutation(holders):
            if reached[c] >= target[c]:
                break
            if kept[i] or (reached + per_image[i] > target).any():
                continue
            kept[i] = True
            reached += per_image[i]
    return np.flatnonzero(kept), reached.tolist()


# ---------------------------------------------------------------- small-objects

def _check_small_objects(p: dict, given: dict) -> None:
    check_range("small-objects", p, "ir", 1)
    _check_choice("small-objects", p, "rare_bucket", SIZE_BUCKETS)
    _check_rare_count("small-objects", p, f"the {p['rare_bucket']} bucket")
    _check_max_objects("small-objects", p)


@register_scene_recipe(
    "small-objects", defaults={"ir": 10.0, "n_per_class": 40, "rare_bucket": "small", "max_objects": 4},
    check=_check_small_objects,
    summary="scale skew: per class n_per_class objects in each frequent size bucket, "
            "n_per_class/ir in the rare one (small)",
    reference="Kisantal et al. 2019, Augmentation for small object detection; COCO size buckets "
              "(Lin et al. 2014)")
def small_objects(ctx: SceneContext) -> SceneSelection:
    ctx.need_composer()
    p, C = ctx.params, ctx.num_classes
    rare = floor(p["n_per_class"] / p["ir"])
    per_bucket = {b: (rare if b == p["rare_bucket"] else p["n_per_class"]) for b in SIZE_BUCKETS}
    rng = ctx.rng(PLAN_STREAM)
    specs = []
    for b, n in per_bucket.items():
        labels = np.repeat(np.arange(C), n)
        specs += object_specs(labels, rng, size_shares={b: 1.0}, occlusion_shares=TRAIN_OCCLUSION_SHARES)
    train = ctx.compose(cut_into_images(specs, p["max_objects"], rng))
    return SceneSelection(train, [], {"minority_buckets": [p["rare_bucket"]],
                                      "asked_per_class": {"size": per_bucket}})


# ---------------------------------------------------------------- occlusion

def _check_occlusion(p: dict, given: dict) -> None:
    check_range("occlusion", p, "ir", 1)
    _check_rare_count("occlusion", p, "heavy occlusion")
    _check_max_objects("occlusion", p)


@register_scene_recipe(
    "occlusion", defaults={"ir": 10.0, "n_per_class": 80, "max_objects": 4}, check=_check_occlusion,
    summary="occlusion skew: per class n_per_class unoccluded objects, n_per_class/ir heavily "
            "occluded (0.3-0.6)",
    reference="Zhang et al. 2018, Occlusion-aware R-CNN; Oksuz et al. 2020 imbalance survey (TPAMI)")
def occlusion(ctx: SceneContext) -> SceneSelection:
    ctx.need_composer()
    p, C = ctx.params, ctx.num_classes
    per_bucket = {"none": p["n_per_class"], "heavy": floor(p["n_per_class"] / p["ir"])}
    rng = ctx.rng(PLAN_STREAM)
    specs = []
    for o, n in per_bucket.items():
        specs += object_specs(np.repeat(np.arange(C), n), rng, occlusion_shares={o: 1.0})
    train = ctx.compose(cut_into_images(specs, p["max_objects"], rng))
    return SceneSelection(train, [], {"minority_buckets": ["heavy"],
                                      "asked_per_class": {"occlusion": per_bucket}})


# ---------------------------------------------------------------- fg-bg

def _check_fg_bg(p: dict, given: dict) -> None:
    if not 0 <= p["empty_share"] < 1:
        raise UsageError(f"recipe fg-bg: empty_share must be in [0, 1), got {p['empty_share']:g}")
    if p["n_images"] < 1:
        raise UsageError(f"recipe fg-bg: n_images must be >= 1, got {p['n_images']}")
    if not 1 <= p["objects_per_image"] <= FG_MAX_OBJECTS:
        raise UsageError(f"recipe fg-bg: objects_per_image must be in [1, {FG_MAX_OBJECTS}] (three large "
                         f"digits fill a canvas), got {p['objects_per_image']}")


@register_scene_recipe(
    "fg-bg", defaults={"n_images": 600, "empty_share": 0.5, "objects_per_image": 1},
    check=_check_fg_bg,
    summary="foreground/background: floor(empty_share * n_images) images without objects, the "
            "others with objects_per_image objects",
    reference="Lin et al. 2017, Focal loss (foreground-background imbalance); Oksuz et al. 2020")
def fg_bg(ctx: SceneContext) -> SceneSelection:
    ctx.need_composer()
    p, C = ctx.params, ctx.num_classes
    n_empty = floor(p["empty_share"] * p["n_images"])
    n_fg = p["n_images"] - n_empty
    k = p["objects_per_image"]
    rng = ctx.rng(PLAN_STREAM)
    labels = np.resize(rng.permutation(C), n_fg * k)  # classes as even as n_fg * k allows
    specs = object_specs(labels, rng, occlusion_shares=TRAIN_OCCLUSION_SHARES)
    specs = [specs[i] for i in rng.permutation(len(specs))]
    plans = [specs[i * k:(i + 1) * k] for i in range(n_fg)] + [[] for _ in range(n_empty)]
    train = ctx.compose([plans[i] for i in rng.permutation(len(plans))])
    return SceneSelection(train, [], {"empty_asked": n_empty, "foreground_images": n_fg,
                                      "empty_share": n_empty / p["n_images"]})


# ---------------------------------------------------------------- applying

def apply_scene_recipe(source: Source, name: str, params: dict | None, seed: int) -> Imbalanced:
    """Make the imbalanced training scenes of ``source`` with scene recipe ``name``; a pure
    function of (source, name, params, seed). ``counts`` are instance counts; the test split is
    the source's, untouched."""
    spec = SCENE_RECIPES.get(name)
    params = resolve_scene_recipe(name, params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"recipe {name}: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(source.train, SceneSet):
        raise UsageError(f"recipe {name} is a detection recipe; source {source.name!r} has no scenes "
                         f"(use a scene source such as digit-scenes)")
    if source.train.num_classes < 2:
        raise UsageError(f"recipe {name}: source {source.name!r} has fewer than 2 classes")
    ctx = SceneContext(source, name, params, int(seed))
    sel = spec.fn(ctx)
    train = sel.train
    counts = train.instance_counts()
    if not sum(counts):
        raise UsageError(f"recipe {name}: the training set has no objects")
    ranges = source.info.get("area_ranges") or (source.composer.area_ranges() if source.composer else None)
    per_image = train.objects_per_image()
    buckets = bucket_counts(train, ranges) if ranges else {"size": None, "occlusion": None}
    info = {
        "recipe": name, "params": dict(params), "seed": int(seed), "source": source.name,
        "class_order": list(ctx.order), "counts": counts, "image_counts": train.image_counts(),
        "minority": list(sel.minority), "n_max": max(counts) if counts else 0, "n_min": min(counts) if counts else 0,
        "ir": (max(counts) / min(counts)) if counts and min(counts) > 0 else None,
        "n_images": len(train), "n_instances": int(sum(counts)),
        "empty_images": sum(1 for n in per_image if n == 0),
        "objects_per_image": np.bincount(np.asarray(per_image, dtype=np.int64),
                                         minlength=1).tolist() if per_image else [0],
        "size_buckets": buckets["size"], "occlusion_buckets": buckets["occlusion"],
        "subset_fingerprint": train.fingerprint(), **sel.info,
    }
    index = None if sel.index is None else np.sort(np.asarray(sel.index, dtype=np.int64))
    return Imbalanced(train, source.test, list(train.class_names), counts, list(sel.minority),
                      params, info, index)

