"""``seg-folder``: ``--dataset seg-folder --data-root DIR`` with ``DIR/images/`` and ``DIR/masks/``
holding images and label masks of the same file stems, and an optional ``DIR/classes.json``.

* ``classes.json`` maps mask values to class names, e.g. ``{"0": "membrane", "255": "cell"}``;
  classes are numbered in increasing value order; a value mapped to ``null`` is void (ignored by
  losses and metrics); at most 255 classes (index 255 is the void label). Without it the mask
  values ``0..K-1`` are the classes (K = the largest value found + 1; names ``"0"..``), and a mask
  value of 255 or more is an error asking for ``classes.json``: 255 is the void label here, and
  binary 0/255 masks (ISBI 2012's originals, many medical sets) would otherwise lose their
  foreground to void without a word. A mask value outside the map is a one-line error naming
  the file.
* Split: ``DIR/splits/{train,test}.txt`` (stems, one per line) when present (``"official"``), else a
  seeded image-level split (``--split-seed``, test fraction 0.2), recorded.
* ``--image-size N``: the longer side becomes N (images bilinear with antialias, masks nearest).
* Images are decoded as RGB (3 channels), as the scene loaders do.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..scenes.real import check_image_size, read_image, seeded_split
from ..segset import SegSet
from ..sources._common import SourceSpec, corrupt, require_root
from . import SEG_SOURCES
from .layout import files_by_stem, map_mask, read_mask, resize_pair

NAME = "seg-folder"
LAYOUT = "DIR/images/<name>.<ext>, DIR/masks/<name>.<ext> (same names), optional DIR/classes.json"
DEFAULT_TEST_FRACTION = 0.2
VOID = 255


def _class_map(root: str, masks: list[np.ndarray]) -> tuple[dict[int, int], list[str], str]:
    """(mask value -> class index or VOID, class names, where the map came from)."""
    path = os.path.join(root, "classes.json")
    if os.path.exists(path):
        try:
            raw = json.loads(open(path).read())
            entries = sorted((int(k), v) for k, v in raw.items())
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise corrupt(path, "classes.json", exc, hint="write it as {\"mask value\": \"class name\"}") from None
        names = [str(v) for _, v in entries if v is not None]
        if len(names) > VOID:
            raise UsageError(f"{path}: {len(names)} classes; at most {VOID} (class index {VOID} is the void label)")
        index, value_map = 0, {}
        for value, name in entries:
            value_map[value] = VOID if name is None else index
            index += name is not None
        return value_map, names, "classes.json"
    top = max((int(m.max()) for m in masks if m.size), default=0)
    if top >= VOID:
        raise UsageError(f"dataset {NAME!r}: a mask holds value {top}; without {path} the mask values 0..K-1 are "
                         f"the classes and {VOID} is the void label -- write classes.json, e.g. "
                         f"{{\"0\": \"background\", \"255\": \"foreground\"}} ({VOID}: null makes it void)")
    return {v: v for v in range(top + 1)}, [str(v) for v in range(top + 1)], "mask values 0..K-1"


def load_seg_folder(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None,
                    image_size=None) -> Source:
    root = require_root(NAME, data_root, LAYOUT)
    size = None if image_size is None else check_image_size(image_size)
    image_dir, mask_dir = os.path.join(root, "images"), os.path.join(root, "masks")
    for d in (image_dir, mask_dir):
        if not os.path.isdir(d):
            raise UsageError(f"dataset {NAME!r}: {d} does not exist (expected {LAYOUT})")
    images, masks = files_by_stem(image_dir), files_by_stem(mask_dir)
    missing = sorted(set(images) - set(masks))
    if missing:
        raise UsageError(f"dataset {NAME!r}: image {images[missing[0]]} has no mask in {mask_dir}")
    stems = sorted(images)
    if not stems:
        raise UsageError(f"dataset {NAME!r}: no images in {image_dir}")
    raw = [read_mask(masks[s]) for s in stems]
    value_map, names, class_source = _class_map(root, raw)
    lut = np.full(max(max(value_map), int(max(m.max() for m in raw))) + 1, -1, dtype=np.int64)
    for value, cls in value_map.items():
        lut[value] = cls
    items = []
    for stem, m in zip(stems, raw):
        # map_mask refuses a negative value (an int32 mask can hold one) instead of letting it
        # index the table from its end
        mapped = map_mask(m, lut, masks[stem], f"{class_source}: {sorted(value_map)}")
        img = read_image(images[stem])
        if tuple(img.shape[1:]) != tuple(mapped.shape):
            raise UsageError(f"{masks[stem]}: mask {tuple(mapped.shape)} and image {tuple(img.shape[1:])} "
                             "differ in size")
        img, mask = resize_pair(img, mapped, size)
        items.append((stem, img, mask))
    split_dir = os.path.join(root, "splits")
    lists = {k: os.path.join(split_dir, f"{k}.txt") for k in ("train", "test")}
    if all(os.path.exists(p) for p in lists.values()):
        wanted = {k: [s.strip() for s in open(p).read().split() if s.strip()] for k, p in lists.items()}
        unknown_stems = [s for k in wanted for s in wanted[k] if s not in images]
        if unknown_stems:
            raise UsageError(f"{split_dir}: split lists name {unknown_stems[0]!r}, which is not in {image_dir}")
        both = sorted(set(wanted["train"]) & set(wanted["test"]))
        if both:
            raise UsageError(f"{split_dir}: {both[0]!r} is in both train.txt and test.txt (training on test images)")
        pos = {s: i for i, s in enumerate(stems)}
        tr, te = [pos[s] for s in wanted["train"]], [pos[s] for s in wanted["test"]]
        split: object = "official"
    else:
        f = DEFAULT_TEST_FRACTION if test_fraction is None else float(test_fraction)
        tr, te = seeded_split(len(stems), split_seed, f, f"{NAME} ({len(stems)} images)")
        split = {"kind": "seeded", "seed": int(split_seed), "test_fraction": f}

    def segset(index) -> SegSet:
        return SegSet([items[i][1] for i in index], [items[i][2] for i in index], list(names), VOID,
                      ids=[items[i][0] for i in index])

    train, test = segset(tr), segset(te)
    info = {
        "dataset": NAME, "reference": "a folder of images and label masks", "data_root": root,
        "files": [image_dir, mask_dir] + ([os.path.join(root, "classes.json")] if class_source == "classes.json" else []),
        "split": split, "class_names": names, "class_source": class_source,
        "value_map": {str(k): (None if v == VOID else v) for k, v in value_map.items()},
        "ignore_index": VOID, "image_size": size, "sizes": {"train": len(train), "test": len(test)},
        "pixel_counts": {"train": train.pixel_counts(), "test": test.pixel_counts()},
        "fingerprint": hashlib.sha256(json.dumps([train.fingerprint(), test.fingerprint(), names,
                                                  sorted(value_map.items())]).encode()).hexdigest()[:16],
    }
    return Source(NAME, train, test, info)


SEG_SOURCES.register(NAME, SourceSpec(
    name=NAME, loader=load_seg_folder, needs="data-root", tracks=("segmentation",),
    recipes=("natural",),
    summary="images/ + masks/ (+ classes.json): any folder of images and label masks (e.g. ISBI 2012 membranes)",
    reference="a generic layout; ISBI 2012 EM segmentation challenge (Arganda-Carreras et al. 2015) is one",
))
