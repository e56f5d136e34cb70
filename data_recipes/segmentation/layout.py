"""What the folder-based segmentation loaders share: listing image files by stem, reading a label
mask, mapping its values through a lookup table (one-line error on a value outside it), resizing an
image with its mask, and the ``Source`` with its info record.

Used by :mod:`.seg_folder` (``files_by_stem``, ``read_mask``, ``resize_pair``) and by the fixed-layout
real datasets :mod:`.camvid`, :mod:`.voc_seg` and :mod:`.cityscapes` (all of it).

* Masks are read as stored: ``PIL.Image.open`` without ``convert`` (a palette PNG gives its palette
  indices, as torchvision's ``VOCSegmentation`` reads them); a mask with channels is an error.
* ``--image-size N``: the longer side becomes N (aspect kept); images bilinear with antialias,
  masks nearest (no new label values).
* ``info["fingerprint"]``: sha256 of both splits' images and mapped masks, the class names and the
  label map, first 16 hex chars.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..scenes.real import read_image, resized_shape
from ..segset import SegSet
from ..sources._common import corrupt

EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VOID = 255


def files_by_stem(folder: str) -> dict[str, str]:
    """``{stem: path}`` of the image files (``EXTS``, any case) in ``folder``, sorted by name."""
    return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.lower().endswith(EXTS)}


def read_mask(path: str, hint: str = "values are classes") -> np.ndarray:
    """The mask at ``path`` as stored (palette indices for ``P`` images), int64 (H, W)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.array(im)
    except OSError as exc:
        raise corrupt(path, "mask image", exc, hint="replace it with a good copy") from None
    if arr.ndim == 3:
        raise UsageError(f"{path}: a label mask must have one channel ({hint}), got {arr.shape[2]}")
    return arr.astype(np.int64)


def resize_pair(img: torch.Tensor, mask: torch.Tensor, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``img`` (C, H, W) and ``mask`` (H, W) with the longer side ``size`` (None: unchanged);
    the image bilinear with antialias, the mask by nearest neighbour with pixel centres aligned
    (``NEAREST_EXACT``: torch's plain ``nearest`` picks the source pixel left of the centre, which
    shifts a downscaled label map by up to half a source pixel against its image)."""
    if size is not None and max(mask.shape) != size:
        shape = list(resized_shape(*mask.shape, size))
        img = F.resize(img, shape, antialias=True)
        mask = F.resize(mask[None], shape, interpolation=F.InterpolationMode.NEAREST_EXACT)[0]
    return img, mask


def lookup_table(value_map: dict[int, int], size: int = 256) -> np.ndarray:
    """A lookup table ``value -> class index or VOID``; -1 marks values that are not labels."""
    lut = np.full(size, -1, dtype=np.int64)
    for value, cls in value_map.items():
        lut[value] = cls
    return lut


def map_mask(raw: np.ndarray, lut: np.ndarray, path: str, allowed: str) -> torch.Tensor:
    """``raw`` mask values through ``lut``; a one-line UsageError naming ``path`` and the first
    value that is not a label (``allowed`` says which are)."""
    inside = (raw >= 0) & (raw < len(lut))
    mapped = np.where(inside, lut[np.clip(raw, 0, len(lut) - 1)], -1)
    bad = mapped < 0
    if bad.any():
        raise UsageError(f"{path}: mask value {int(raw[bad].flat[0])} is not a label ({allowed})")
    return torch.from_numpy(mapped)


def load_pair(stem: str, image_path: str, mask_path: str, lut: np.ndarray, allowed: str, size: int | None,
              mask_hint: str = "values are classes", raw_fix=None) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(stem, image uint8 (3, H, W), mask int64 (H, W)) of one annotated image, mapped and
    resized; ``raw_fix`` (optional) rewrites the raw mask values before the lookup."""
    raw = read_mask(mask_path, mask_hint)
    if raw_fix is not None:
        raw = raw_fix(raw)
    mask = map_mask(raw, lut, mask_path, allowed)
    img = read_image(image_path)
    if tuple(img.shape[1:]) != tuple(mask.shape):
        raise UsageError(f"{mask_path}: mask {tuple(mask.shape)} and image {tuple(img.shape[1:])} "
                         f"({image_path}) differ in size")
    img, mask = resize_pair(img, mask, size)
    return stem, img, mask


def pair_up(images: dict[str, str], masks: dict[str, str], mask_for, image_for, what: str) -> list[str]:
    """The sorted keys present in both; a one-line UsageError naming the first image without a
    mask (or mask without an image) and where it was expected (``mask_for(key)``,
    ``image_for(key)``)."""
    for key in sorted(images):
        if key not in masks:
            raise UsageError(f"image {images[key]} has no {what}: expected {mask_for(key)}")
    for key in sorted(masks):
        if key not in images:
            raise UsageError(f"{what} {masks[key]} has no image: expected {image_for(key)}")
    return sorted(images)


def seg_source(name: str, *, reference: str, data_root: str, train_items: list, test_items: list,
               class_names: list[str], class_source: str, label_map: dict[int, int], split, files: list[str],
               image_size: int | None, **extra) -> Source:
    """The ``Source`` of two lists of ``(stem, image, mask)`` and its info record; ``label_map``
    (stored value -> class index or VOID) is recorded as ``value_map`` (void as null) and hashed into the
    fingerprint. ``file_names`` are the ``files`` relative to ``data_root``."""
    def segset(items) -> SegSet:
        return SegSet([it[1] for it in items], [it[2] for it in items], list(class_names), VOID,
                      ids=[it[0] for it in items])

    train, test = segset(train_items), segset(test_items)
    mapping = sorted((int(k), int(v)) for k, v in label_map.items())
    info = {
        "dataset": name,
        "reference": reference,
        "data_root": data_root,
        "files": [str(p) for p in files],
        "file_names": [os.path.relpath(str(p), data_root) for p in files],
        "split": split,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "class_source": class_source,
        "value_map": {str(k): (None if v == VOID else v) for k, v in mapping},
        "ignore_index": VOID,
        "image_size": image_size,
        "resize": (None if image_size is None else
                   f"longer side resized to {image_size} px (aspect kept): images bilinear with antialias, "
                   "masks nearest"),
        "sizes": {"train": len(train), "test": len(test)},
        "pixel_counts": {"train": train.pixel_counts(), "test": test.pixel_counts()},
        "image_counts": {"train": train.image_counts(), "test": test.image_counts()},
        "fingerprint": hashlib.sha256(json.dumps([train.fingerprint(), test.fingerprint(), list(class_names),
                                                  mapping]).encode()).hexdigest()[:16],
        **extra,
    }
    return Source(name, train, test, info)


def require_dirs(name: str, dirs: list[str], layout: str) -> None:
    """A one-line UsageError naming the first folder of ``dirs`` that does not exist."""
    for d in dirs:
        if not os.path.isdir(d):
            raise UsageError(f"dataset {name!r}: {d} does not exist (expected {layout})")
