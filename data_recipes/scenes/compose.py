"""The scene composer: real digit images pasted onto a noisy canvas, with exact boxes, masks,
size buckets and occlusion.

A *plan* is one image's list of :class:`ObjectSpec` s (class, height in px, occlusion target,
size bucket). :meth:`Composer.compose` turns a list of plans into a
:class:`~..sceneset.SceneSet`, deterministically for a seed:

* canvas: 1 x S x S uint8, background noise uniform in ``0..noise_max`` (25);
* object: a pool digit of its class, its empty border rows / columns trimmed (those with no
  pixel above ``mask_threshold``), resized (bilinear, antialiased, ``torch.nn.functional
  .interpolate``) to ``height`` px, width keeping the trimmed digit's aspect; its *full* mask
  is the resized pixels ``> mask_threshold`` (64); it is placed at a random position fully
  inside the canvas where its mask covers no visible pixel of an object placed before (objects
  never hide one another, so each object's occlusion is exactly what its occluder made);
* occlusion: an object with an occlusion target gets an *occluder*, a rectangle of noise
  texture (uniform ``occluder_levels``, 40..160) anchored at a corner of the object's box
  (extended 0..2 px outwards), whose size is picked so that the hidden share of the mask meets
  the target; the rectangle covers no visible pixel of another object;
* per object: ``occlusion = 1 - visible / full`` mask pixels (exact, computed after all
  pasting), at most ``max_occlusion`` (0.7) with at least ``min_visible`` (4) visible pixels;
  ``boxes`` = the tight XYXY box of the *visible* mask (``x2 = max col + 1``); ``area`` = that
  box's area (size buckets are about object scale: a digit's stroke area would call most
  digits small); ``masks`` = the visible masks.

An object whose spec names a ``size`` bucket (and no height) gets a box area drawn
log-uniformly inside the bucket (S = 64: small 19-51 px^2, medium 80-461, large 634-1037, i.e.
sides of about 4-7, 9-21 and 25-32 px) and is re-drawn (digit, height, position, occluder)
until its visible box area lies strictly inside that bucket (never on a threshold, where
COCOeval's closed ranges would count it twice), so bucket counts of a composed set are exact.
Objects are placed largest first; in a crowded image (nominal box areas above 0.3 of the
canvas) the four largest aim at distinct quadrants so that they pack. :func:`cut_into_images`
keeps every image within 0.62 of the canvas (at most three large objects), so every plan it
makes can be composed; an image that still fails is restarted with fresh draws (at most 20
times, then RuntimeError).

Size buckets (:func:`area_ranges`) are COCO's 32 px / 96 px thresholds on a 256-px reference
canvas scaled to S: small ``area < (32 S / 256)^2``, medium ``< (96 S / 256)^2``, large above
(S = 64: 64 and 576 px^2). Occlusion buckets (:data:`OCCLUSION_BUCKETS`) are those of the
detection metrics: none ``< 0.1``, partial ``[0.1, 0.3)``, heavy ``>= 0.3``.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ...benchmarks.contract.errors import UsageError
from ..sceneset import SceneSet, make_target
from ..sources._common import check_fraction, stratified_split

DEFAULT_IMAGE_SIZE = 64
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 512
POOL_TEST_FRACTION = 0.3
NOISE_MAX = 25
MASK_THRESHOLD = 64
OCCLUDER_LEVELS = (40, 160)
MIN_VISIBLE = 4
MAX_OCCLUSION = 0.7
OCCLUSION_TOL = 0.03  # a float occlusion target t is met within +- this

SIZE_BUCKETS = ("small", "medium", "large")
# where a bucket's box areas are drawn, in units of the small/medium threshold a = (S/8)^2
# (the medium/large threshold is 9a)
_AREA_INTERVALS = {"small": (0.3, 0.8), "medium": (1.25, 7.2), "large": (9.9, 16.2)}
_FOOTPRINT = {k: math.sqrt(lo * hi) / 64.0 for k, (lo, hi) in _AREA_INTERVALS.items()}
# [lo, hi) of target["occlusion"]; the last bucket also holds its upper end
OCCLUSION_BUCKETS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.1), "partial": (0.1, 0.3), "heavy": (0.3, 1.0)}
# what a spec asks for, by occlusion bucket (heavy stops at 0.6, below max_occlusion)
OCCLUSION_TARGETS: dict[str, float | tuple[float, float]] = {
    "none": 0.0, "partial": (0.1, 0.3), "heavy": (0.3, 0.6)}

_MAX_OBJECT_TRIES = 60
_MAX_RESTARTS = 20
_RANDOM_POSITIONS = 10
CANVAS_BUDGET = 0.62
_CROWDED = 0.3  # sum of nominal box areas / canvas area above which objects aim at quadrants


# ---------------------------------------------------------------- buckets

def area_thresholds(image_size: int) -> tuple[float, float]:
    """(small/medium, medium/large) box-area thresholds: COCO's 32 px and 96 px on a 256-px
    reference canvas scaled to ``image_size``, squared."""
    s = float(image_size)
    return (32.0 * s / 256.0) ** 2, (96.0 * s / 256.0) ** 2


def area_ranges(image_size: int) -> dict[str, list[float]]:
    """COCOeval's ``areaRng`` form for a canvas of ``image_size`` px:
    ``{"all": [0, 1e10], "small": [0, a], "medium": [a, b], "large": [b, 1e10]}``."""
    a, b = area_thresholds(image_size)
    return {"all": [0.0, 1e10], "small": [0.0, a], "medium": [a, b], "large": [b, 1e10]}


def size_bucket(area: float, ranges: dict) -> str:
    """The size bucket of a box ``area`` (``ranges`` as :func:`area_ranges` returns)."""
    if area < ranges["small"][1]:
        return "small"
    return "medium" if area < ranges["medium"][1] else "large"


def occlusion_bucket(occlusion: float) -> str:
    if occlusion < OCCLUSION_BUCKETS["none"][1]:
        return "none"
    return "partial" if occlusion < OCCLUSION_BUCKETS["partial"][1] else "heavy"


def bucket_counts(scenes: SceneSet, ranges: dict) -> dict[str, dict[str, int]]:
    """Objects per size bucket (by ``area``) and per occlusion bucket of ``scenes``."""
    sizes = {k: 0 for k in SIZE_BUCKETS}
    occl = {k: 0 for k in OCCLUSION_BUCKETS}
    for t in scenes.targets:
        for a, o in zip(t["area"].tolist(), t["occlusion"].tolist()):
            sizes[size_bucket(a, ranges)] += 1
            occl[occlusion_bucket(o)] += 1
    return {"size": sizes, "occlusion": occl}


def check_image_size(image_size) -> int:
    """``image_size`` (None -> 64) as an int in [32, 512]; a UsageError otherwise."""
    if image_size is None:
        return DEFAULT_IMAGE_SIZE
    try:
        s = int(image_size)
        ok = not isinstance(image_size, bool) and float(image_size) == s
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"image size must be an integer number of pixels, got {image_size!r}")
    if not MIN_IMAGE_SIZE <= s <= MAX_IMAGE_SIZE:
        raise UsageError(f"image size must be in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}] px for composed "
                         f"scenes, got {s}")
    return s


# ---------------------------------------------------------------- plans

class ObjectSpec(NamedTuple):
    """One object of a plan.

    ``label``: its class. ``height``: the digit's height in px (its trimmed content, before the
    mask threshold); None draws it from ``size``. ``occlusion``: 0 (no occluder), a target
    ``t`` (met within +-0.03) or a range ``(lo, hi)`` (``lo <= occlusion < hi``).
    ``size``: None or a bucket name; when given, the object's visible box area is in it."""

    label: int
    height: float | None = None
    occlusion: float | tuple[float, float] = 0.0
    size: str | None = None


def spread(n: int, shares: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """``n`` category indices in random order with counts ``floor(n * share)``, the remainder
    going to the categories with the largest fractional parts (ties broken at random)."""
    shares = np.asarray(shares, dtype=np.float64)
    shares = shares / shares.sum()
    raw = n * shares
    counts = np.floor(raw + 1e-9).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        frac = raw - counts + rng.random(len(shares)) * 1e-6
        counts[np.argsort(-frac, kind="stable")[:rest]] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))


def object_specs(labels: Sequence[int], rng: np.random.Generator, *,
                 size_shares: dict[str, float] | None = None,
                 occlusion_shares: dict[str, float] | None = None) -> list[ObjectSpec]:
    """Specs for ``labels``: within each class, size buckets and occlusion buckets spread by
    their shares (exact counts, :func:`spread`); default sizes even over the three buckets,
    occlusion none."""
    size_shares = size_shares or {k: 1.0 for k in SIZE_BUCKETS}
    occlusion_shares = occlusion_shares or {"none": 1.0}
    labels = np.asarray(labels, dtype=np.int64)
    size_names, occ_names = list(size_shares), list(occlusion_shares)
    out: list[ObjectSpec | None] = [None] * len(labels)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        sizes = spread(len(where), list(size_shares.values()), rng)
        occs = spread(len(where), list(occlusion_shares.values()), rng)
        for i, s, o in zip(where, sizes, occs):
            out[i] = ObjectSpec(int(c), None, OCCLUSION_TARGETS[occ_names[o]], size_names[s])
    return out  # type: ignore[return-value]


def footprint(spec) -> float:
    """The canvas share a spec's object nominally takes (its size bucket's typical box area /
    S^2; 0 without a bucket)."""
    size = spec[3] if len(spec) > 3 else None
    return _FOOTPRINT.get(size, 0.0)


def cut_into_images(specs: Sequence, max_objects: int, rng: np.random.Generator,
                    shuffle: bool = True, budget: float = CANVAS_BUDGET) -> list[list]:
    """Shuffle ``specs`` (seeded) and cut them into consecutive images of ``1..max_objects``
    objects (each size drawn uniformly; the last image takes what is left). An image also ends
    early when the next object would bring its :func:`footprint` sum above ``budget`` (0.62 of
    the canvas: at most three large objects), so every plan can be composed."""
    specs = list(specs)
    if shuffle:
        specs = [specs[i] for i in rng.permutation(len(specs))]
    plans, i = [], 0
    while i < len(specs):
        k = int(rng.integers(1, max_objects + 1))
        j, used = i, 0.0
        while j < len(specs) and j - i < k and (j == i or used + footprint(specs[j]) <= budget):
            used += footprint(specs[j])
            j += 1
        plans.append(specs[i:j])
        i = j
    return plans


# ---------------------------------------------------------------- pool

@dataclass
class ObjectPool:
    """Object images to paste: ``images`` uint8 (M, 1, h, w), ``labels`` int64 (M,),
    ``class_names``. Each image's content (rows / columns with a pixel above the mask
    threshold) is what gets resized."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    threshold: int = MASK_THRESHOLD
    _content: list[torch.Tensor] = field(default=None, init=False, repr=False)  # type: ignore[assignment]
    aspect: np.ndarray = field(default=None, init=False, repr=False)  # type: ignore[assignment]
    by_class: list[np.ndarray] = field(default=None, init=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self):
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.ndim != 4 or self.images.shape[1] != 1 or len(self.images) != len(self.labels):
            raise ValueError(f"pool images must be (M, 1, h, w) with M labels, got "
                             f"{self.images.shape} and {self.labels.shape}")
        self._content, aspect = [], []
        for img in self.images[:, 0]:
            on = img > self.threshold
            rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
            if not len(rows):
                raise ValueError("a pool image has no pixel above the mask threshold")
            crop = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
            self._content.append(torch.from_numpy(crop)[None, None])
            aspect.append(crop.shape[1] / crop.shape[0])
        self.aspect = np.asarray(aspect)
        self.by_class = [np.flatnonzero(self.labels == c) for c in range(len(self.class_names))]
        empty = [c for c, idx in enumerate(self.by_class) if not len(idx)]
        if empty:
            raise ValueError(f"pool has no image of class {empty[0]}")

    def __len__(self) -> int:
        return len(self.labels)

    def render(self, j: int, h: int, w: int) -> np.ndarray:
        """Pool item ``j``'s content resized to (h, w), uint8."""
        out = F.interpolate(self._content[j], size=(h, w), mode="bilinear", align_corners=False,
                            antialias=True)
        return out[0, 0].clamp_(0, 255).round_().to(torch.uint8).numpy()


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits as uint8 (1797, 1, 8, 8) (``round(v * 255 / 16)``) and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images.astype(np.float64) * 255.0 / 16.0).astype(np.uint8)[:, None]
    return images, bunch.target.astype(np.int64)


def digit_pools(split_seed: int = 0, test_fraction: float | None = None
                ) -> tuple[ObjectPool, ObjectPool, dict]:
    """(train pool, test pool, split record): sklearn's digits split by a seeded, class-
    stratified split (test fraction 0.3 by default), so test scenes never reuse a training
    digit image."""
    f = check_fraction(POOL_TEST_FRACTION if test_fraction is None else test_fraction)
    images, labels = digit_images()
    tr, te = stratified_split(labels, split_seed, f, f"the digit pool ({len(labels)} images)")
    names = [str(c) for c in range(10)]
    split = {"kind": "stratified", "of": "digit pool", "seed": int(split_seed), "test_fraction": f,
             "pool_sizes": {"train": len(tr), "test": len(te)}}
    return ObjectPool(images[tr], labels[tr], names), ObjectPool(images[te], labels[te], names), split


# ---------------------------------------------------------------- composer

@dataclass
class Scene:
    """One composed image: ``image`` uint8 (1, S, S), its canonical ``target`` and the *full*
    (unoccluded) masks (n, S, S) bool, for checks."""

    image: torch.Tensor
    target: dict
    full_masks: np.ndarray


@dataclass
class Composer:
    """Composes scenes from ``pool`` on an ``image_size`` canvas (see the module docstring)."""

    pool: ObjectPool
    image_size: int = DEFAULT_IMAGE_SIZE
    noise_max: int = NOISE_MAX
    occluder_levels: tuple[int, int] = OCCLUDER_LEVELS
    min_visible: int = MIN_VISIBLE
    max_occlusion: float = MAX_OCCLUSION
    occlusion_tol: float = OCCLUSION_TOL

    @property
    def class_names(self) -> list[str]:
        return list(self.pool.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.pool.class_names)

    def area_ranges(self) -> dict[str, list[float]]:
        return area_ranges(self.image_size)

    def settings(self) -> dict:
        return {"image_size": self.image_size, "noise": [0, self.noise_max],
                "mask_threshold": self.pool.threshold, "occluder_levels": list(self.occluder_levels),
                "min_visible": self.min_visible, "max_occlusion": self.max_occlusion,
                "occlusion_tol": self.occlusion_tol, "resize": "bilinear, antialias",
                "area": "box area of the visible mask", "occluder": "noise rectangle at a box corner",
                "occlusion_buckets": {k: list(v) for k, v in OCCLUSION_BUCKETS.items()}}

    # ---- public

    def compose(self, plans: Sequence[Sequence], seed: int, prefix: str = "scene") -> SceneSet:
        """A SceneSet with one image per plan; image ``i`` depends only on (seed, prefix, i,
        plan i). Ids are ``"<prefix>-<i>"``."""
        scenes = [self.render(plan, seed, i, prefix) for i, plan in enumerate(plans)]
        return SceneSet([s.image for s in scenes], [s.target for s in scenes], self.class_names,
                        ids=[f"{prefix}-{i}" for i in range(len(scenes))])

    def render(self, plan: Sequence, seed: int, index: int = 0, prefix: str = "scene") -> Scene:
        """Compose one image of ``plan`` (a list of ObjectSpec or tuples of its fields)."""
        specs = [self._spec(s) for s in plan]
        stream = zlib.crc32(prefix.encode())
        for restart in range(_MAX_RESTARTS):
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), stream, int(index), restart]))
            crowded = sum(self._nominal_area(sp) for sp in specs) > _CROWDED * self.image_size ** 2
            scene = self._try_render(specs, rng, anchored=crowded or restart >= 2)
            if scene is not None:
                return scene
        raise RuntimeError(f"could not compose image {index} ({len(specs)} objects: "
                           f"{[tuple(s) for s in specs]}) on a {self.image_size}-px canvas")

    # ---- internals

    def _spec(self, s) -> ObjectSpec:
        spec = s if isinstance(s, ObjectSpec) else ObjectSpec(*s)
        if not 0 <= int(spec.label) < self.num_classes:
            raise ValueError(f"object class {spec.label} outside 0..{self.num_classes - 1}")
        if spec.size is not None and spec.size not in SIZE_BUCKETS:
            raise ValueError(f"size must be one of {SIZE_BUCKETS} or None, got {spec.size!r}")
        if spec.height is None and spec.size is None:
            raise ValueError("an object spec needs a height or a size bucket")
        occ = spec.occlusion
        lo, hi = (occ if isinstance(occ, tuple) else (occ, occ))
        if not 0 <= lo <= hi <= self.max_occlusion:
            raise ValueError(f"occlusion target {occ!r} outside [0, {self.max_occlusion}]")
        return spec

    def _area_interval(self, size: str) -> tuple[float, float]:
        """Box-area interval where a bucket's heights are drawn (inside the bucket)."""
        a = area_thresholds(self.image_size)[0]
        top = (0.8 * self.image_size) ** 2
        lo, hi = _AREA_INTERVALS[size]
        return lo * a, min(hi * a, top)

    def _bucket_ok(self, area: float, size: str | None) -> bool:
        """``area`` is in bucket ``size`` and on no threshold (COCOeval's ranges are closed at
        both ends, so a box on a threshold would count in two buckets there)."""
        return size is None or (size_bucket(area, area_ranges(self.image_size)) == size
                                and area not in area_thresholds(self.image_size))

    def _try_render(self, specs: list[ObjectSpec], rng: np.random.Generator, anchored: bool) -> Scene | None:
        S = self.image_size
        canvas = rng.integers(0, self.noise_max + 1, (S, S), dtype=np.uint8)
        owner = np.full((S, S), -1, dtype=np.int16)  # object index, -1 background, -2 occluder
        full = np.zeros((len(specs), S, S), dtype=bool)
        order = sorted(range(len(specs)), key=lambda k: -self._nominal_area(specs[k]))
        # crowded images: the largest objects aim at distinct quadrants, so they pack
        quarters = [(S / 4, S / 4), (S / 4, 3 * S / 4), (3 * S / 4, S / 4), (3 * S / 4, 3 * S / 4)]
        anchors = [quarters[i] for i in rng.permutation(4)] if anchored else []
        for rank, k in enumerate(order):
            anchor = anchors[rank] if rank < len(anchors) else None
            if not self._place(k, specs[k], rng, canvas, owner, full, anchor):
                return None
        n = len(specs)
        visible = full & (owner[None] == np.arange(n, dtype=np.int16)[:, None, None])
        boxes, areas, occl = np.zeros((n, 4), np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        for k in range(n):
            rows, cols = np.flatnonzero(visible[k].any(1)), np.flatnonzero(visible[k].any(0))
            boxes[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
            areas[k] = (cols[-1] + 1 - cols[0]) * (rows[-1] + 1 - rows[0])
            occl[k] = 1.0 - visible[k].sum() / full[k].sum()
        target = make_target(boxes, [int(s.label) for s in specs], (S, S), area=areas, occlusion=occl,
                             masks=torch.from_numpy(visible.astype(np.uint8)))
        return Scene(torch.from_numpy(canvas[None].copy()), target, full)

    def _nominal_area(self, spec: ObjectSpec) -> float:
        if spec.size is not None:
            return math.sqrt(math.prod(self._area_interval(spec.size)))
        return float(spec.height) ** 2

    def _place(self, k, spec, rng, canvas, owner, full, anchor=None) -> bool:
        S = self.image_size
        members = self.pool.by_class[int(spec.label)]
        target_area = None
        for attempt in range(_MAX_OBJECT_TRIES):
            j = int(members[rng.integers(len(members))])
            aspect = float(self.pool.aspect[j])
            if spec.height is not None:
                h = float(spec.height)
            else:
                if target_area is None or attempt % 10 == 0:
                    lo, hi = self._area_interval(spec.size)
                    target_area = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                h = math.sqrt(target_area / aspect)
            h = round(min(max(h, 3.0), S - 2))
            w = round(min(max(h * aspect, 1.0), S - 2))
            vals = self.pool.render(j, h, w)
            mask = vals > self.pool.threshold
            if mask.sum() < self.min_visible:
                target_area = None if target_area is None else target_area * 1.3
                continue
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            vals = vals[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            pos = self._position(mask, owner, rng, anchor)
            if pos is None:  # no room: another digit; for a size bucket, a smaller area in it
                if target_area is not None:
                    target_area = max(self._area_interval(spec.size)[0], target_area * 0.8)
                continue
            y, x = pos
            rect = None
            if spec.occlusion != 0.0:
                rect, seen = self._occluder(mask, y, x, spec, owner, rng)
                if rect is None:
                    if seen is not None and target_area is not None:  # box missed the bucket
                        lo, hi = self._area_interval(spec.size)
                        target_area *= math.sqrt(lo * hi) / max(seen, 1.0)
                    continue
            elif not self._bucket_ok(mask.size, spec.size):
                if target_area is not None:
                    lo, hi = self._area_interval(spec.size)
                    target_area *= math.sqrt(lo * hi) / mask.size
                continue
            hm, wm = mask.shape
            canvas[y:y + hm, x:x + wm][mask] = vals[mask]
            owner[y:y + hm, x:x + wm][mask] = k
            full[k, y:y + hm, x:x + wm] = mask
            if rect is not None:
                r0, r1, c0, c1 = rect
                canvas[r0:r1, c0:c1] = rng.integers(self.occluder_levels[0], self.occluder_levels[1] + 1,
                                                    (r1 - r0, c1 - c0), dtype=np.uint8)
                owner[r0:r1, c0:c1] = -2
            return True
        return False

    def _position(self, mask: np.ndarray, owner: np.ndarray, rng: np.random.Generator, anchor=None):
        """A random top-left corner where ``mask`` covers no visible object pixel, or None.
        With an ``anchor`` (y, x), the object's centre lands near it (within S/8, else the
        nearest free positions)."""
        S, (hm, wm) = self.image_size, mask.shape
        if hm > S or wm > S:
            return None
        jitter = S / 8
        for _ in range(_RANDOM_POSITIONS):
            if anchor is None:
                y, x = int(rng.integers(0, S - hm + 1)), int(rng.integers(0, S - wm + 1))
            else:
                y = min(max(round(anchor[0] + rng.uniform(-jitter, jitter) - hm / 2), 0), S - hm)
                x = min(max(round(anchor[1] + rng.uniform(-jitter, jitter) - wm / 2), 0), S - wm)
            if not (owner[y:y + hm, x:x + wm][mask] >= 0).any():
                return y, x
        from scipy.signal import fftconvolve

        hits = fftconvolve((owner >= 0).astype(np.float32), mask[::-1, ::-1].astype(np.float32), mode="valid")
        free = np.flatnonzero(hits < 0.5)
        if not len(free):
            return None
        if anchor is not None:  # one of the 8 free positions nearest the anchor
            fy, fx = np.divmod(free, S - wm + 1)
            dist = (fy + hm / 2 - anchor[0]) ** 2 + (fx + wm / 2 - anchor[1]) ** 2
            free = free[np.argsort(dist, kind="stable")[:8]]
        y, x = divmod(int(free[rng.integers(len(free))]), S - wm + 1)
        return y, x

    def _occluder(self, mask, y, x, spec, owner, rng):
        """(rect (r0, r1, c0, c1) in canvas coords, None) meeting the spec's occlusion (and size
        bucket), or (None, a visible box area seen) / (None, None) when none fits."""
        S, (hm, wm) = self.image_size, mask.shape
        total = int(mask.sum())
        occ = spec.occlusion
        if isinstance(occ, tuple):
            lo, hi = occ
        else:
            lo, hi = occ - self.occlusion_tol, occ + self.occlusion_tol + 1e-12
        m = mask.astype(np.int32)
        cands = []
        for corner in range(4):
            flip = m[::-1 if corner >= 2 else 1, ::-1 if corner % 2 else 1]
            covered = flip.cumsum(0).cumsum(1)  # [a-1, b-1]: pixels under an a x b corner rect
            frac = covered / total
            ok = (frac >= lo) & (frac < hi) & (frac <= self.max_occlusion) & (total - covered >= self.min_visible)
            a, b = np.nonzero(ok)
            cands.append(np.stack([np.full(len(a), corner), a + 1, b + 1], 1))
        cands = np.concatenate(cands)
        if not len(cands):
            return None, None
        seen = []
        for corner, a, b in cands[rng.permutation(len(cands))[:64]]:
            lr0, lc0 = (hm - a if corner >= 2 else 0), (wm - b if corner % 2 else 0)
            local = np.zeros_like(mask)
            local[lr0:lr0 + a, lc0:lc0 + b] = True
            vis = mask & ~local
            rows, cols = np.flatnonzero(vis.any(1)), np.flatnonzero(vis.any(0))
            area = float((rows[-1] + 1 - rows[0]) * (cols[-1] + 1 - cols[0]))
            if not self._bucket_ok(area, spec.size):
                seen.append(area)
                continue
            r0, r1, c0, c1 = y + lr0, y + lr0 + a, x + lc0, x + lc0 + b
            # extend 0..2 px outwards on the sides where the rect meets the object's box edge
            ext = rng.integers(0, 3, 4)
            r0 = max(0, r0 - ext[0]) if lr0 == 0 else r0
            r1 = min(S, r1 + ext[1]) if lr0 + a == hm else r1
            c0 = max(0, c0 - ext[2]) if lc0 == 0 else c0
            c1 = min(S, c1 + ext[3]) if lc0 + b == wm else c1
            if (owner[r0:r1, c0:c1] >= 0).any():
                continue
            return (int(r0), int(r1), int(c0), int(c1)), None
        return None, (float(np.median(seen)) if seen else None)
