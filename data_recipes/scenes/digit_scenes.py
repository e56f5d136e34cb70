"""``digit-scenes``: the embedded scene source -- sklearn's digits composed into detection /
segmentation scenes (see :mod:`.compose`). Nothing is downloaded.

* The 1,797 digits are split into a training pool and a test pool (seeded, class-stratified,
  test fraction 0.3 = ``test_fraction``), so test scenes never reuse a training digit image.
* ``train``: a balanced composed set -- 150 objects per class, in images of 1..4 objects; in
  each class sizes are even over small / medium / large and occlusion is 60 % none, 20 %
  partial (0.1-0.3), 20 % heavy (0.3-0.6). It is what the ``natural`` recipe returns.
* ``test``: 6 objects for each (class, size bucket, occlusion bucket) cell (540 objects), in
  images of 1..4 objects, composed from the test pool. It depends only on ``split_seed`` and
  ``image_size``, never on a recipe or a training seed.

``mnist-scenes`` (``--data-root``) composes the same scenes from MNIST's 28x28 digits.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..imageset import Source
from ..sources._common import SourceSpec
from . import SCENE_SOURCES
from .compose import (
    OCCLUSION_BUCKETS,
    OCCLUSION_TARGETS,
    SIZE_BUCKETS,
    Composer,
    ObjectPool,
    ObjectSpec,
    bucket_counts,
    check_image_size,
    cut_into_images,
    digit_pools,
    object_specs,
)

NAME = "digit-scenes"
MNIST_NAME = "mnist-scenes"
MNIST_REFERENCE = ("LeCun et al., MNIST (1998), composed into scenes; COCO size buckets (Lin et al. 2014) "
                   "scaled to the canvas")
TRAIN_PER_CLASS = 150
TRAIN_MAX_OBJECTS = 4
TRAIN_OCCLUSION_SHARES = {"none": 0.6, "partial": 0.2, "heavy": 0.2}
TEST_PER_CELL = 6
TEST_MAX_OBJECTS = 4
SOURCE_STREAM, TRAIN_STREAM, TEST_STREAM = 7001, 0, 1
REFERENCE = ("sklearn.datasets.load_digits (Alpaydin & Kaynak, UCI Optical Recognition of "
             "Handwritten Digits, 1998), composed into scenes; COCO size buckets (Lin et al. 2014) "
             "scaled to the canvas")


def balanced_plans(num_classes: int, per_class: int, max_objects: int, rng: np.random.Generator,
                   occlusion_shares: dict[str, float] | None = None) -> list[list[ObjectSpec]]:
    """``per_class`` objects of each class, sizes even over the buckets, occlusion by
    ``occlusion_shares`` (the training source's 60/20/20 by default), cut into images."""
    labels = np.repeat(np.arange(num_classes), per_class)
    specs = object_specs(labels, rng, occlusion_shares=occlusion_shares or TRAIN_OCCLUSION_SHARES)
    return cut_into_images(specs, max_objects, rng)


def held_out_plans(num_classes: int, rng: np.random.Generator, per_cell: int = TEST_PER_CELL,
               max_objects: int = TEST_MAX_OBJECTS) -> list[list[ObjectSpec]]:
    specs = [ObjectSpec(c, None, OCCLUSION_TARGETS[o], s)
             for c in range(num_classes) for s in SIZE_BUCKETS for o in OCCLUSION_BUCKETS
             for _ in range(per_cell)]
    return cut_into_images(specs, max_objects, rng)


def _rng(split_seed: int, which: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(split_seed), SOURCE_STREAM, which]))


def load_digit_scenes(*, data_root=None, data_path=None, download=False, split_seed=0,
                      test_fraction=None, image_size=None) -> Source:
    train_pool, test_pool, split = digit_pools(split_seed, test_fraction)
    return _scenes(NAME, REFERENCE, train_pool, test_pool, split, ["sklearn.datasets.load_digits"],
                   split_seed, image_size)


def load_mnist_scenes(*, data_root=None, data_path=None, download=False, split_seed=0,
                      test_fraction=None, image_size=None) -> Source:
    """The same scenes composed from MNIST's 28x28 digits (``--data-root`` in torchvision's
    layout, ``<root>/MNIST/raw``): the digit pools are the ``mnist`` source's own train / test
    splits (with only the test file present -- as ``../shared/data`` -- its seeded stratified
    split), so test scenes never reuse a training digit."""
    from ..sources import load_source

    mnist = load_source("mnist", data_root=data_root, download=download, split_seed=split_seed,
                        test_fraction=test_fraction)
    names = list(mnist.train.class_names)

    def pool(images):
        return ObjectPool(images.images.numpy(), images.labels.numpy(), names)

    return _scenes(MNIST_NAME, MNIST_REFERENCE, pool(mnist.train), pool(mnist.test),
                   {"kind": "the mnist source's split", "mnist": mnist.info["split"],
                    "mnist_fingerprint": mnist.info["fingerprint"]},
                   list(mnist.info.get("files", [])), split_seed, image_size)


def _scenes(name: str, reference: str, train_pool: ObjectPool, test_pool: ObjectPool, split: dict,
            files: list[str], split_seed: int, image_size) -> Source:
    S = check_image_size(image_size)
    composer = Composer(train_pool, S)
    C = composer.num_classes
    train = composer.compose(balanced_plans(C, TRAIN_PER_CLASS, TRAIN_MAX_OBJECTS, _rng(split_seed, TRAIN_STREAM)),
                             split_seed, prefix="train")
    test = Composer(test_pool, S).compose(held_out_plans(C, _rng(split_seed, TEST_STREAM)), split_seed,
                                          prefix="test")
    ranges = composer.area_ranges()
    fp = hashlib.sha256((train.fingerprint() + test.fingerprint()).encode()).hexdigest()[:16]
    info = {
        "dataset": name,
        "reference": reference,
        "files": files,
        "file_names": [Path(f).name for f in files],
        "split": split,
        "image_size": S,
        "image_shape": [1, S, S],
        "num_classes": C,
        "class_names": composer.class_names,
        "sizes": {"train": len(train), "test": len(test)},
        "instance_counts": {"train": train.instance_counts(), "test": test.instance_counts()},
        "image_counts": {"train": train.image_counts(), "test": test.image_counts()},
        "class_counts": {"train": train.instance_counts(), "test": test.instance_counts()},
        "n_instances": {"train": sum(train.instance_counts()), "test": sum(test.instance_counts())},
        "buckets": {"train": bucket_counts(train, ranges), "test": bucket_counts(test, ranges)},
        "area_ranges": ranges,
        "occlusion_ranges": {k: list(v) for k, v in OCCLUSION_BUCKETS.items()},
        "fingerprint": fp,
        "composition": {
            **composer.settings(),
            "train": {"per_class": TRAIN_PER_CLASS, "max_objects": TRAIN_MAX_OBJECTS,
                      "sizes": "even over small/medium/large", "occlusion_shares": TRAIN_OCCLUSION_SHARES},
            "test": {"per_cell": TEST_PER_CELL, "cells": "class x size bucket x occlusion bucket",
                     "max_objects": TEST_MAX_OBJECTS},
        },
    }
    return Source(name, train, test, info, composer)


SCENE_SOURCES.register(NAME, SourceSpec(
    name=NAME,
    loader=load_digit_scenes,
    summary="sklearn's 8x8 digits composed into 64x64 scenes (1-4 objects, boxes, masks, sizes, "
            "occlusion); test digits never appear in training scenes",
    reference=REFERENCE,
    needs="nothing",
    tracks=("detection",),
))


SCENE_SOURCES.register(MNIST_NAME, SourceSpec(
    name=MNIST_NAME,
    loader=load_mnist_scenes,
    summary="MNIST's 28x28 digits (from --data-root) composed into scenes like digit-scenes",
    reference=MNIST_REFERENCE,
    needs="data-root",
    tracks=("detection",),
))
