"""``digit-scenes`` / ``mnist-scenes`` with per-pixel labels: the scene sources of the detection
track (:mod:`..scenes.digit_scenes`) rendered as label maps.

Class 0 is ``background`` (the noisy canvas and the noise-texture occluders); the digit of class
``c`` is class ``c + 1``, on its *visible* pixels (the composer's masks: an occluded part of a digit
is background, or the digit in front). Nothing is void. The training and test scenes are exactly the
detection track's (same composer, same seeds), so the two tracks see the same images.

The segmentation source keeps the scene source as its ``composer`` (:class:`SceneLabels`): the
segmentation recipes compose their training scenes through the scene recipes and convert them.
"""
from __future__ import annotations

import hashlib

import torch

from ..imageset import Source
from ..sceneset import SceneSet
from ..scenes import load_scenes
from ..scenes.digit_scenes import MNIST_NAME, NAME
from ..segset import SegSet
from ..sources._common import SourceSpec
from . import SEG_SOURCES

BACKGROUND = "background"
VOID = 255


def label_map(image: torch.Tensor, target: dict) -> torch.Tensor:
    """(H, W) int64: 0 background, ``label + 1`` on each object's visible pixels."""
    out = torch.zeros(image.shape[1:], dtype=torch.int64)
    masks = target.get("masks")
    if masks is None:
        raise ValueError("scene objects have no masks; per-pixel labels need them")
    for m, c in zip(masks.as_subclass(torch.Tensor).bool(), target["labels"].tolist()):
        out[m] = c + 1
    return out


def scenes_to_segset(scenes: SceneSet) -> SegSet:
    """The label maps of ``scenes`` (images shared, not copied); ``synthetic`` kept."""
    return SegSet(list(scenes.images), [label_map(i, t) for i, t in zip(scenes.images, scenes.targets)],
                  [BACKGROUND] + list(scenes.class_names), VOID, scenes.synthetic.clone(), list(scenes.ids))


class SceneLabels:
    """What a segmentation recipe composes with: the scene source it came from."""

    def __init__(self, scenes: Source):
        self.scenes = scenes

    def to_segset(self, scenes: SceneSet) -> SegSet:
        return scenes_to_segset(scenes)


def _loader(name: str):
    def load(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None,
             image_size=None) -> Source:
        scenes = load_scenes(name, data_root=data_root, data_path=data_path, download=download,
                             split_seed=split_seed, test_fraction=test_fraction, image_size=image_size)
        train, test = scenes_to_segset(scenes.train), scenes_to_segset(scenes.test)
        info = {k: v for k, v in scenes.info.items()
                if k not in ("class_counts", "instance_counts", "fingerprint", "class_names", "num_classes")}
        info |= {
            "class_names": train.class_names, "num_classes": train.num_classes, "ignore_index": VOID,
            "labels": "0 = background (canvas and occluders), c + 1 = digit c on its visible pixels",
            "pixel_counts": {"train": train.pixel_counts(), "test": test.pixel_counts()},
            "instance_counts": scenes.info["instance_counts"],
            "scene_fingerprint": scenes.info["fingerprint"],
            "fingerprint": hashlib.sha256(("seg" + train.fingerprint() + test.fingerprint()).encode()).hexdigest()[:16],
        }
        return Source(name, train, test, info, SceneLabels(scenes))
    return load


SEG_SOURCES.register(NAME, SourceSpec(
    name=NAME, loader=_loader(NAME), needs="nothing", tracks=("segmentation",),
    summary="the digit scenes with per-pixel labels: background + 10 digit classes on visible pixels",
    reference="sklearn.datasets.load_digits composed into 64x64 scenes (see the detection track)",
))

SEG_SOURCES.register(MNIST_NAME, SourceSpec(
    name=MNIST_NAME, loader=_loader(MNIST_NAME), needs="data-root", tracks=("segmentation",),
    summary="MNIST's digits (from --data-root) composed into scenes, per-pixel labels",
    reference="LeCun et al., MNIST (1998), composed into scenes",
))
