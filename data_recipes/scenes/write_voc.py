"""A long-tailed set of small objects in the VOC layout, composed from the digit pool:
``python -m imbench.data_recipes.scenes.write_voc OUT [--image-size 256] [--n-max 291] [--n-min 2]
[--heights 10,18] [--test-per-class 30] [--seed 0]``.

What it is for: a real-layout long tail to run ``--dataset voc --recipe natural`` on, with the shape
of the sets where losses meet their hardest case -- many classes whose counts fall geometrically
from ``n_max`` to ``n_min`` instances (class p of C gets ``int(n_max * (n_min / n_max) ** (p /
(C - 1)))``), small objects (digits ``heights`` px tall on an ``image_size`` canvas, no occluder),
1-3 objects an image, a balanced test split of ``test_per_class`` instances a class. The defaults
are those of a real traffic-light set (291 -> 2 instances) on which ``eqlv2``'s dense-head
adaptation collapsed (README, "Small objects and real long tails").

It writes ``OUT/VOCdevkit/VOC2007/`` with ``JPEGImages/*.png`` (grey, stored as RGB),
``Annotations/*.xml`` (1-based inclusive ``bndbox``; classes named ``d0`` ... ``d9``) and
``ImageSets/Main/{trainval,test}.txt``. Training images are composed from the training pool and
test images from the test pool (``digit_pools``), so no digit image is in both; the set is a
function of the arguments alone.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ...benchmarks.contract.errors import UsageError
from .compose import Composer, ObjectSpec, check_image_size, digit_pools

NAMES = [f"d{c}" for c in range(10)]


def longtail_counts(n_max: int, n_min: int, classes: int = 10) -> list[int]:
    """Instance counts falling geometrically from ``n_max`` to ``n_min`` over ``classes`` classes."""
    return [int(n_max * (n_min / n_max) ** (p / (classes - 1))) for p in range(classes)]


def _plans(counts, heights, rng) -> list[list[ObjectSpec]]:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(int)
    rng.shuffle(labels)
    plans, i = [], 0
    while i < len(labels):
        k = int(rng.integers(1, 4))
        plans.append([ObjectSpec(int(lab), float(rng.uniform(*heights))) for lab in labels[i:i + k]])
        i += k
    return plans


def _xml(image_id: str, size: int, target: dict) -> str:
    objects = "".join(
        f"<object><name>{NAMES[int(label)]}</name><difficult>0</difficult><bndbox>"
        f"<xmin>{int(math.floor(x0)) + 1}</xmin><ymin>{int(math.floor(y0)) + 1}</ymin>"
        f"<xmax>{int(math.ceil(x1))}</xmax><ymax>{int(math.ceil(y1))}</ymax></bndbox></object>"
        for (x0, y0, x1, y1), label in zip(target["boxes"].tolist(), target["labels"].tolist()))
    return (f"<annotation><filename>{image_id}.png</filename><size><width>{size}</width><height>{size}</height>"
            f"<depth>3</depth></size>{objects}</annotation>\n")


def write_voc(out: Path, *, image_size: int = 256, n_max: int = 291, n_min: int = 2,
              heights: tuple[float, float] = (10.0, 18.0), test_per_class: int = 30, seed: int = 0) -> Path:
    """Write the set (see the module docstring); returns its ``VOC2007`` folder."""
    size = check_image_size(image_size)
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max, got {n_min} and {n_max}")
    if not 1 <= heights[0] <= heights[1] <= size / 2:
        raise ValueError(f"heights must be 1 <= lo <= hi <= image_size / 2, got {heights}")
    folder = Path(out) / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    train_pool, test_pool, _ = digit_pools(seed)
    rng = np.random.default_rng(seed)
    for offset, (split, pool, counts) in enumerate((("trainval", train_pool, longtail_counts(n_max, n_min)),
                                                    ("test", test_pool, [test_per_class] * 10))):
        composer = Composer(pool, image_size=size)
        ids = []
        for i, plan in enumerate(_plans(counts, heights, rng)):
            scene = composer.render(plan, seed + offset, i, split)
            image_id = f"{split}{i:05d}"
            Image.fromarray(scene.image[0].numpy()).convert("RGB").save(folder / "JPEGImages" / f"{image_id}.png")
            (folder / "Annotations" / f"{image_id}.xml").write_text(_xml(image_id, size, scene.target))
            ids.append(image_id)
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m imbench.data_recipes.scenes.write_voc", description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--n-max", type=int, default=291)
    ap.add_argument("--n-min", type=int, default=2)
    ap.add_argument("--heights", default="10,18", help="lo,hi: digit heights in px")
    ap.add_argument("--test-per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        lo, hi = (float(v) for v in args.heights.split(","))
        folder = write_voc(Path(args.out), image_size=args.image_size, n_max=args.n_max, n_min=args.n_min,
                           heights=(lo, hi), test_per_class=args.test_per_class, seed=args.seed)
    except (ValueError, UsageError) as exc:  # a bad argument: one line, exit 2
        print(f"write_voc: {exc}", file=sys.stderr)
        return 2
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
