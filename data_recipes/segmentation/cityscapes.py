"""``cityscapes``: Cityscapes fine annotations, 19 evaluation classes
(``--dataset cityscapes --data-root DIR``).

* Layout (torchvision's ``Cityscapes`` root): ``DIR/leftImg8bit/{train,val}/<city>/<x>_leftImg8bit.png``
  and ``DIR/gtFine/{train,val}/<city>/<x>_gtFine_labelIds.png`` (gtFine's other files are not read).
* Labels: the ``labelIds`` are mapped to the 19 train ids of cityscapesScripts' ``labels.py`` (road
  7 -> 0 ... bicycle 33 -> 18); every other id in ``0..33`` and ``-1`` (license plate; 255 when
  stored in 8 bits) is void (-> 255). Any other value is a one-line error naming the file.
* Split (``"official"``): train = ``train`` (2975 images), test = ``val`` (500); the test split's
  labels are withheld. ``--split-seed`` and ``--test-fraction`` are ignored.
* ``--image-size N``: the longer side becomes N (images bilinear with antialias, masks nearest).
  Full-size images (2048x1024) take about 8 MB each and their int64 masks 16 MB: use
  ``--image-size`` on a small machine. Nothing is downloaded (``--download`` is ignored; the
  files need a login at cityscapes-dataset.com).
"""
from __future__ import annotations

import os

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..scenes.real import check_image_size
from ..sources._common import SourceSpec, require_root
from . import SEG_SOURCES
from .layout import VOID, load_pair, lookup_table, pair_up, require_dirs, seg_source

NAME = "cityscapes"
# (name, labelId, trainId) of the 19 evaluated classes, from cityscapesScripts' labels.py.
TRAIN_CLASSES = [
    ("road", 7, 0), ("sidewalk", 8, 1), ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4),
    ("pole", 17, 5), ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8),
    ("terrain", 22, 9), ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13),
    ("truck", 27, 14), ("bus", 28, 15), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18),
]
CLASSES = [name for name, _, _ in TRAIN_CLASSES]
LABEL_MAP = {**{i: VOID for i in range(34)}, **{label: train for _, label, train in TRAIN_CLASSES}, 255: VOID}
ALLOWED = "Cityscapes labelIds are 0..33, -1 (255 in 8 bits) = void"
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
LAYOUT = ("DIR/leftImg8bit/{train,val}/<city>/<x>_leftImg8bit.png and "
          "DIR/gtFine/{train,val}/<city>/<x>_gtFine_labelIds.png")
REFERENCE = "Cordts et al., The Cityscapes Dataset for Semantic Urban Scene Understanding (CVPR 2016)"


def _by_stem(split_dir: str, suffix: str) -> tuple[dict[str, str], list[str]]:
    """``{<x>: path}`` of the files ending in ``suffix`` in the city folders of ``split_dir``, and
    those folders."""
    out, cities = {}, []
    for city in sorted(os.listdir(split_dir)):
        d = os.path.join(split_dir, city)
        if not os.path.isdir(d):
            continue
        cities.append(d)
        for f in sorted(os.listdir(d)):
            if f.endswith(suffix):
                out[f[: -len(suffix)]] = os.path.join(d, f)
    return out, cities


def _twin(path: str, here: str, there: str, suffix: str, twin_suffix: str) -> str:
    """Where the other half of a pair is expected: same city, the other tree and suffix."""
    rel = os.path.relpath(path, here)
    return os.path.join(there, rel[: -len(suffix)] + twin_suffix)


def _license_plate_void(raw: np.ndarray) -> np.ndarray:
    """-1 (license plate, only storable in signed masks) -> 255, which the map makes void."""
    return np.where(raw == -1, 255, raw)


def load_cityscapes(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None,
                    image_size=None) -> Source:
    root = require_root(NAME, data_root, LAYOUT)
    size = check_image_size(image_size)
    dirs = {s: (os.path.join(root, "leftImg8bit", s), os.path.join(root, "gtFine", s)) for s in ("train", "val")}
    require_dirs(NAME, [d for pair in dirs.values() for d in pair], LAYOUT)
    lut = lookup_table(LABEL_MAP)
    items, files = {}, []
    for split, (image_dir, label_dir) in dirs.items():
        images, image_cities = _by_stem(image_dir, IMAGE_SUFFIX)
        labels, label_cities = _by_stem(label_dir, LABEL_SUFFIX)
        stems = pair_up(images, labels, lambda s: _twin(images[s], image_dir, label_dir, IMAGE_SUFFIX, LABEL_SUFFIX),
                        lambda s: _twin(labels[s], label_dir, image_dir, LABEL_SUFFIX, IMAGE_SUFFIX),
                        "labelIds annotation")
        if not stems:
            raise UsageError(f"dataset {NAME!r}: no *{IMAGE_SUFFIX} in the city folders of {image_dir} "
                             f"(expected {LAYOUT})")
        files += [image_dir, label_dir] + image_cities + label_cities
        items[split] = [load_pair(s, images[s], labels[s], lut, ALLOWED, size, raw_fix=_license_plate_void)
                        for s in stems]
    return seg_source(
        NAME, reference=REFERENCE, data_root=root, train_items=items["train"], test_items=items["val"],
        class_names=CLASSES, class_source="the 19 train ids of cityscapesScripts' labels.py", label_map=LABEL_MAP,
        split="official", files=files, image_size=size,
        protocol="Cityscapes gtFine: train to train, val to test (test labels are withheld); labelIds -> 19 train ids",
    )


SEG_SOURCES.register(NAME, SourceSpec(
    name=NAME, loader=load_cityscapes, needs="data-root", tracks=("segmentation",),
    recipes=("natural",),
    summary="Cityscapes fine annotations, 19 classes (leftImg8bit/ + gtFine/ labelIds; train / val)",
    reference=REFERENCE,
))
