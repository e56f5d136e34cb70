"""Image-level resampling of scene sets (detection, segmentation): what ``ros`` and ``rfs`` do
when the items are images holding several objects of several classes."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..benchmarks.contract import Context, frequency_groups

MAX_GROWTH = 10  # ros adds at most this many times the set's own size


def class_presence(train) -> list[set[int]]:
    """The classes each image holds."""
    return [set(t["labels"].tolist()) for t in train.targets]


def per_image_counts(train) -> list[np.ndarray]:
    """Per image, its count of each class: objects (scene sets) or labelled pixels (label maps)."""
    K = train.num_classes
    if hasattr(train, "masks"):
        return [np.bincount(m[m != train.ignore_index].numpy().reshape(-1), minlength=K) for m in train.masks]
    return [np.bincount(t["labels"].numpy(), minlength=K) for t in train.targets]


def oversample_images(train, ctx: Context, salt: str = "ros"):
    """Duplicate images that hold under-represented classes until every class has about the
    largest class's count (instances on scene sets, pixels on label maps).

    Classes are filled rarest first: images holding class ``c`` are drawn uniformly (seeded,
    with replacement) and appended until ``c`` reaches the largest count, counting what the
    copies bring of every class; the set grows by at most ``MAX_GROWTH`` times its size. A class
    present in every image (background on digit-scenes, both classes of ISBI 2012) cannot be
    rebalanced by copying images: it is neither a target nor filled (with no other class, nothing is
    copied). Copies are real images (not flagged synthetic). Notes the counts reached.
    """
    rng = ctx.rng(salt)
    per_image = per_image_counts(train)
    presence = [set(np.flatnonzero(v).tolist()) for v in per_image]
    counts = np.array(train.instance_counts(), dtype=np.int64)
    everywhere = {c for c in range(train.num_classes) if all(c in p for p in presence)} if presence else set()
    free = [c for c in range(train.num_classes) if c not in everywhere]
    target = int(counts[free].max()) if free else 0
    added: list[int] = []
    for c in np.argsort(counts, kind="stable"):
        if int(c) in everywhere:
            continue
        holders = [i for i, p in enumerate(presence) if int(c) in p]
        while holders and counts[c] < target and len(added) < MAX_GROWTH * len(train):
            i = holders[int(rng.integers(len(holders)))]
            added.append(i)
            counts += per_image[i]
    ctx.note("ros_counts", {"target": target, "reached": counts.tolist(), "images_added": len(added),
                            "not_rebalanced": sorted(everywhere)})
    if not added:
        return train
    if hasattr(train, "masks"):
        out = train.subset(list(range(len(train))) + added)
        out.ids = list(train.ids) + [f"{train.ids[i]}-copy" for i in added]
        return out
    extra = train.subset(added)
    return train.concat(extra.images, extra.targets, synthetic=False, ids=[f"{i}-copy" for i in extra.ids],
                        area_scale=extra.area_scale)


def lvis_threshold(train) -> float:
    """The repeat threshold ``t`` scaled to the set: the image frequency where LVIS's
    ``frequent`` group starts (on LVIS, t = 0.001 is 100 images of 100k: the common/frequent
    boundary), with the groups of :func:`~imbench.benchmarks.contract.frequency_groups`; so the
    rare and common classes are repeated, the frequent ones not."""
    image_counts = train.image_counts()
    groups = frequency_groups(image_counts)
    frequent = [image_counts[c] for c in groups["frequent"]]
    return min(frequent) / len(train) if frequent else 1.0


def repeat_factors(train, t: float) -> torch.Tensor:
    """LVIS repeat factors: r(c) = max(1, sqrt(t / f(c))), f(c) the share of images holding c;
    r(I) = max over the classes of image I (1 for an image without objects)."""
    n = len(train)
    freq = [c / n for c in train.image_counts()]
    r_class = [max(1.0, math.sqrt(t / f)) if f > 0 else 1.0 for f in freq]
    return torch.tensor([max([r_class[c] for c in p], default=1.0) for p in class_presence(train)],
                        dtype=torch.float64)
