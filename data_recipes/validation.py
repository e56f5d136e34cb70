"""A validation split carved from a recipe's training set: what a cell with ``validation: F``
(``--validation F``, a grid's ``validation``) trains and is evaluated on.

Such a cell trains on the recipe's training set minus the carved images and is evaluated on the
carved images *instead of* the test split, which it never loads into its hooks or its metrics:
defaults and hyperparameters are chosen on these cells (``imbench run select``), never on test.

The carve is seeded (``seed``: the cell's subset seed, so every method and training seed of a
block sees the same split) and stratified: each image falls in the stratum of the rarest class it
holds (by the training set's counts; images with nothing labelled form their own stratum), and each
stratum of n >= 2 images gives max(1, round(F * n)) of them, at most n - 1, to the validation
split -- so a rare class keeps training images and, where it has two, is also validated on.
A stratum of one image stays in training. What was carved is recorded (``info["validation"]``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .recipes import Imbalanced

SEED_TAG = 0x7A1  # the carve's own stream: independent of the recipe's draws with the same seed


def image_classes(train) -> list[np.ndarray]:
    """The classes each training image holds: its label (classification), its objects' labels
    (detection) or its labelled pixels' classes (segmentation)."""
    if hasattr(train, "labels"):
        return [np.asarray([int(v)]) for v in train.labels]
    if hasattr(train, "targets"):
        return [t["labels"].unique().numpy() for t in train.targets]
    return [m[m != train.ignore_index].unique().numpy() for m in train.masks]


def strata(train, counts: list[int]) -> np.ndarray:
    """Per image: the rarest class it holds (by ``counts``), or -1 when it holds none."""
    order = np.asarray(counts, dtype=np.float64)
    out = np.full(len(train), -1, dtype=np.int64)
    for i, classes in enumerate(image_classes(train)):
        if len(classes):
            out[i] = int(classes[np.argmin(order[classes])])
    return out


def carve_indices(train, counts: list[int], fraction: float, seed: int, tag: int = SEED_TAG
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) sorted positions of ``train`` by the rule above (``tag``: the stream)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation must be a fraction in (0, 1), got {fraction}")
    keys = strata(train, counts)
    rng = np.random.default_rng([int(seed), int(tag)])
    val = []
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        val += rng.choice(members, size=take, replace=False).tolist()
    val = np.sort(np.asarray(val, dtype=np.int64))
    return np.setdiff1d(np.arange(len(train)), val), val


def carve(imb: Imbalanced, fraction: float, seed: int) -> Imbalanced:
    """``imb`` with its training set split: ``train`` the rest, ``test`` the validation images."""
    keep, val = carve_indices(imb.train, imb.counts, fraction, seed)
    train, held = imb.train.subset(keep), imb.train.subset(val)
    counts = list(train.instance_counts())
    info = {**imb.info, "validation": {
        "fraction": float(fraction), "seed": int(seed), "n_train": int(len(keep)), "n_val": int(len(val)),
        "train_counts": counts, "val_counts": list(held.instance_counts()),
        "rule": "stratified by each image's rarest class; max(1, round(F*n)) of a stratum of n >= 2, at most n - 1",
    }}
    if "train_rare_index" in info:
        # the intra recipe's rare sub-mode, followed into the two parts: the carved images of it
        # are the validation split's rare sub-mode
        rare = np.asarray(info["train_rare_index"], dtype=np.int64)
        info["train_rare_index"] = np.flatnonzero(np.isin(keep, rare)).tolist()
        info["test_rare_index"] = np.flatnonzero(np.isin(val, rare)).tolist()
    index = None if imb.index is None else np.asarray(imb.index)[keep]
    return replace(imb, train=train, test=held, counts=counts, info=info, index=index)
