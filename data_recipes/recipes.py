"""Imbalance recipes: pure, seeded functions from a balanced source to an imbalanced training split.

``apply_recipe(source, name, params, seed)`` returns an :class:`Imbalanced`: the imbalanced
training subset, the source's test split untouched (only ``binary`` relabels it), the per-class
counts, the minority ("tail") classes and a JSON-serialisable ``info`` for the run record.

Built-in recipes (``RECIPES``; counts are exact, ``C`` classes, ``p`` a profile position):

* ``longtail`` (Cao et al. 2019, CIFAR-10-LT): ``n_p = int(n_max * (1/ir) ** (p / (C - 1)))``,
  the expression of kaidic/LDAM-DRW, so n_max 5000, ir 100 gives 5000, 2997, ..., 83, 50.
* ``step`` (Buda et al. 2018): the last ``floor(mu * C)`` positions get ``floor(n_max / ir)``.
* ``binary``: one positive class against the pooled rest (labels 0 = ``not-<name>``,
  1 = ``<name>``; the test split is relabelled the same way and keeps its natural ratio).
  ``n_neg = min(available negatives, floor(available positives * ir)[, n_max])``,
  ``n_pos = floor(n_neg / ir)``; ``fraction`` f (the positives' share) means ir = (1 - f) / f.
  Negatives are drawn uniformly from the pooled rest (not stratified by class).
  Here ``n_max`` caps the negatives (0 = no cap), it is not the per-class count.
* ``drop-one`` (BAGAN, Mariani et al. 2018): class ``target`` keeps ``floor(fraction * n_max)``.
* ``counts``: explicit per-position counts, e.g. DeepSMOTE's MNIST 4000,2000,...,60,40.
* ``intra`` (intra-class imbalance): KMeans splits class ``target`` into ``k`` sub-modes; the
  smallest cluster is the rare sub-mode and keeps ``max(1, floor(fraction * size))`` images.

Common parameters: ``class_order`` = ``index`` (position p is class p) or ``random`` (a
permutation drawn from the seed) maps profile positions to classes; it never relabels
classes. ``n_max`` = the head (majority) count; 0, the default, means the smallest class
count of the source's training split, so every class can reach it.

Minority (tail) classes, as recorded in ``minority`` and used by tail-recall metrics:
``longtail`` and ``counts``: classes whose count is below ``sqrt(max * min)`` (the geometric
midpoint of the counts; the last 5 classes of CIFAR-10-LT IR 100); ``step`` and ``drop-one``:
the classes the recipe reduced below ``n_max``; ``binary``: ``[1]``; ``intra``: ``[target]``.

``info["subset_fingerprint"]`` hashes the kept indices: cells with the same subset seed (the
``seed`` argument here; ``--subset-seed`` on the command line) train on the same images.

Determinism: class order, per-class picks and the negatives' pool each draw from their own
``np.random.default_rng(SeedSequence([seed, stream, ...]))``; inside a class the recipe keeps
the first ``n`` of a seeded permutation, so for one seed a smaller count is a subset of a
larger one (nested across ``ir``). The returned indices are sorted (source order).
Floors of products such as ``fraction * n_max`` carry a 1e-9 relative tolerance so that
0.57 * 100 is 57, not 56; ``longtail`` uses the reference's plain ``int(...)``.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.registry import Registry
from .imageset import ImageSet, Source

COMMON_DEFAULTS: dict = {"class_order": "index", "n_max": 0}
CLASS_ORDERS = ("index", "random")
ORDER_STREAM, CLASS_STREAM, POOL_STREAM, CLUSTER_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class RecipeSpec:
    """A registered recipe. ``fn(ctx: RecipeContext) -> Selection``; ``defaults`` holds every
    parameter the recipe accepts (common ones included); ``check(resolved, given)`` raises
    ``UsageError`` for value ranges that need no data (``given``: the caller's raw dict)."""

    name: str
    fn: Callable[["RecipeContext"], "Selection"]
    defaults: dict
    summary: str
    reference: str
    tracks: tuple[str, ...] = ("classification",)
    check: Callable[[dict, dict], None] | None = None


RECIPES: Registry[RecipeSpec] = Registry("recipe")


def register_recipe(name: str, *, defaults: dict, summary: str, reference: str = "",
                    tracks: tuple[str, ...] = ("classification",), check=None,
                    common: tuple[str, ...] = ("class_order", "n_max"), origin: str = "builtin"):
    """Decorator registering ``fn(ctx) -> Selection`` as recipe ``name``; the ``common``
    parameters (``class_order``, ``n_max``) are added to ``defaults``."""
    def add(fn):
        full = {k: COMMON_DEFAULTS[k] for k in common} | dict(defaults)
        RECIPES.register(name, RecipeSpec(name, fn, full, summary, reference, tuple(tracks), check),
                         origin=origin)
        return fn
    return add


@dataclass
class Selection:
    """What a recipe function returns: indices into the source train split, the minority
    classes (in the output label space), recipe-specific ``info``, the head count it used
    (``n_max``; None = the largest output count) and, to relabel, ``label_map`` (old class ->
    new class, applied to train and test) with the new ``class_names``."""

    index: np.ndarray
    minority: list[int]
    info: dict = field(default_factory=dict)
    n_max: int | None = None
    label_map: np.ndarray | None = None
    class_names: list[str] | None = None


@dataclass
class Imbalanced:
    """The result of a recipe: ``train`` (the imbalanced subset), ``test`` (the source's test
    split, relabelled only by ``binary``), per-class ``counts`` of ``train``, ``minority``
    (tail) class indices, resolved ``params``, JSON-serialisable ``info`` and ``index``
    (the sorted source-train indices that make up ``train``)."""

    train: ImageSet
    test: ImageSet
    class_names: list[str]
    counts: list[int]
    minority: list[int]
    params: dict
    info: dict
    index: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]


def floor(x: float) -> int:
    """``math.floor`` with a 1e-9 relative tolerance against float error (0.57 * 100 -> 57)."""
    return math.floor(x + 1e-9 * max(1.0, abs(x)))


class SeededContext:
    """What every recipe function (image-level here, scene-level in ``scenes/recipes.py``) gets: the
    source, its splits, the resolved parameters, the seed, the class order (``class_order``:
    ``index`` or a seeded ``random`` permutation) and independent seeded generators."""

    def __init__(self, source: Source, name: str, params: dict, seed: int):
        self.source, self.name, self.params, self.seed = source, name, params, seed
        self.train, self.test = source.train, source.test
        self.class_names = list(self.train.class_names)
        self.num_classes = len(self.class_names)
        if params.get("class_order", "index") == "random":
            self.order = [int(c) for c in self.rng(ORDER_STREAM).permutation(self.num_classes)]
        else:
            self.order = list(range(self.num_classes))

    def rng(self, *stream: int) -> np.random.Generator:
        """An independent generator for ``stream`` (e.g. ``(CLASS_STREAM, c)``)."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    def class_label(self, c: int) -> str:
        return f"{c} ({self.class_names[c]!r})"


class RecipeContext(SeededContext):
    """The inputs of an image-level recipe function: also each class's item indices."""

    def __init__(self, source: Source, name: str, params: dict, seed: int):
        super().__init__(source, name, params, seed)
        labels = self.train.labels.numpy()
        self.class_index = [np.flatnonzero(labels == c) for c in range(self.num_classes)]
        self.available = [len(i) for i in self.class_index]

    def take(self, c: int, n: int) -> np.ndarray:
        """``n`` indices of class ``c``: the first ``n`` of a seeded permutation, sorted."""
        if n > self.available[c]:
            raise UsageError(f"recipe {self.name}: class {self.class_label(c)} has "
                             f"{self.available[c]} training images, {n} requested")
        return np.sort(self.rng(CLASS_STREAM, c).permutation(self.class_index[c])[:n])

    def take_counts(self, counts_by_class: dict[int, int]) -> np.ndarray:
        """Indices for ``{class: count}``; a count below 1 is a UsageError."""
        for c, n in counts_by_class.items():
            if n < 1:
                raise UsageError(
                    f"recipe {self.name}: class {self.class_label(c)} would keep {n} images; "
                    f"use a smaller ir (or a larger fraction) or a larger n_max")
        return np.concatenate([self.take(c, n) for c, n in sorted(counts_by_class.items())])

    def n_max(self) -> int:
        """The resolved head count: ``params['n_max']`` or, when 0, the smallest class."""
        smallest = int(np.argmin(self.available))
        if self.available[smallest] == 0:
            raise UsageError(f"recipe {self.name}: class {self.class_label(smallest)} has no "
                             f"training images in source {self.source.name!r}")
        n = int(self.params.get("n_max", 0)) or self.available[smallest]
        if n > self.available[smallest]:
            raise UsageError(
                f"recipe {self.name}: n_max {n} is larger than class {self.class_label(smallest)} "
                f"has ({self.available[smallest]} training images); use n_max <= "
                f"{self.available[smallest]} or 0 (= the smallest class)")
        return n

    def check_class(self, key: str, c: int) -> int:
        if not 0 <= c < self.num_classes:
            raise UsageError(f"recipe {self.name}: {key} {c} is out of range; "
                             f"source {self.source.name!r} has classes 0..{self.num_classes - 1}")
        return c


def midpoint_minority(counts: list[int]) -> list[int]:
    """Indices whose count is below the geometric midpoint ``sqrt(max * min)``."""
    cut = math.sqrt(max(counts) * min(counts))
    return [i for i, n in enumerate(counts) if n < cut]


# ---------------------------------------------------------------- parameters

def _convert(recipe: str, key: str, value, default):
    bad = UsageError(f"recipe {recipe}: parameter {key} must be "
                     f"{'an integer' if type(default) is int else 'a number' if type(default) is float else 'text'}"
                     f", got {value!r}")
    if type(default) is str:
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value).strip()
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        try:
            value = float(value.strip()) if type(default) is float else _int_text(value)
        except ValueError:
            raise bad from None
    if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise bad
    if type(default) is int:
        if float(value) != int(value):
            raise bad
        return int(value)
    return float(value)


def _int_text(text: str) -> int:
    f = float(text.strip())
    if not math.isfinite(f) or f != int(f):
        raise ValueError(text)
    return int(f)


def resolve_recipe(name: str, params: dict | None = None) -> dict:
    """The full parameter dict of recipe ``name``: defaults filled in, values (CLI strings
    too) converted to the default's type, data-free range checks applied. Idempotent."""
    spec = RECIPES.get(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise UsageError(f"recipe {name}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} (known: {', '.join(spec.defaults)})")
    out = {k: _convert(name, k, params[k], d) if k in params else d for k, d in spec.defaults.items()}
    if "class_order" in out and out["class_order"] not in CLASS_ORDERS:
        raise UsageError(f"recipe {name}: class_order must be one of {', '.join(CLASS_ORDERS)}, "
                         f"got {out['class_order']!r}")
    if out.get("n_max", 0) < 0:
        raise UsageError(f"recipe {name}: n_max must be >= 0 (0 = the smallest class), got {out['n_max']}")
    if spec.check is not None:
        spec.check(out, params)
    return out


def check_range(recipe: str, params: dict, key: str, lo: float, hi: float | None = None,
                lo_open: bool = False, note: str = "") -> None:
    """UsageError unless ``lo <(=) params[key] (<= hi)``."""
    v = params[key]
    ok = (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
        raise UsageError(f"recipe {recipe}: {key} must be {'in ' if hi is not None else ''}{rng}"
                         f"{note}, got {v:g}")


# ---------------------------------------------------------------- applying

def apply_recipe(source: Source, name: str, params: dict | None, seed: int) -> Imbalanced:
    """Make the imbalanced training split of ``source`` with recipe ``name``; a pure function
    of (source, name, params, seed)."""
    spec = RECIPES.get(name)
    params = resolve_recipe(name, params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"recipe {name}: seed must be a non-negative integer, got {seed!r}")
    if source.train.num_classes < 2:
        raise UsageError(f"recipe {name}: source {source.name!r} has fewer than 2 classes")
    ctx = RecipeContext(source, name, params, int(seed))
    sel = spec.fn(ctx)
    index = np.sort(np.asarray(sel.index, dtype=np.int64))
    train, test, class_names = source.train.subset(index), source.test, list(source.train.class_names)
    if sel.label_map is not None:
        lmap = torch.as_tensor(np.asarray(sel.label_map), dtype=torch.int64)
        class_names = list(sel.class_names)
        train = ImageSet(train.images, lmap[train.labels], class_names, train.synthetic)
        test = ImageSet(test.images, lmap[test.labels], class_names, test.synthetic)
    counts = train.counts()
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        raise UsageError(f"recipe {name}: class {empty[0]} ({class_names[empty[0]]!r}) has no "
                         f"images left; use a smaller ir or a larger n_max")
    n_max = int(sel.n_max if sel.n_max is not None else max(counts))
    info = {
        "recipe": name, "params": dict(params), "seed": int(seed), "source": source.name,
        "class_order": list(ctx.order), "counts": counts, "minority": list(sel.minority),
        "n_max": n_max, "n_min": min(counts), "ir": max(counts) / min(counts),
        "source_counts": list(ctx.available),
        "subset_fingerprint": hashlib.sha256(index.tobytes()).hexdigest()[:16], **sel.info,
    }
    return Imbalanced(train, test, class_names, counts, list(sel.minority), params, info, index)


from . import interclass, intra  # noqa: E402,F401  (registers the built-in recipes)
