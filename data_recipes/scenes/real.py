"""What the real scene loaders (:mod:`.voc`, :mod:`.coco`) share: reading images, sanitising
boxes, resizing for a CPU, the seeded image-level split and the ``Source`` with its info record.

Sanitising (counted in ``info["sanitised"]``): boxes are clipped to the image (``clipped``);
boxes of zero or negative area after clipping are dropped (``dropped_empty``); an image that
lost all its objects stays, with none (``images_emptied``); a size stated in the annotation that
differs from the decoded image counts as ``size_mismatch`` (the decoded size is used). With
``image_size`` the longer side becomes ``image_size`` (aspect kept, antialiased) and boxes follow
through ``transforms.v2``; ``area`` stays in original pixels (COCO's size buckets keep their
meaning).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np
import torch
from torchvision import tv_tensors

from ...benchmarks.contract.errors import UsageError
from ..imageset import Source
from ..sceneset import SceneSet, make_target
from ..sources._common import check_fraction, corrupt

AREA_RANGES = {"all": [0, 1e10], "small": [0, 1024], "medium": [1024, 9216], "large": [9216, 1e10]}
FIX = "replace it with a good copy"
SANITISING = ("boxes clipped to the image (counted: clipped); boxes of zero or negative area after clipping "
              "dropped (dropped_empty); images left without objects kept (images_emptied); an annotated image "
              "size differing from the decoded image counted (size_mismatch), the decoded size wins")


def check_image_size(image_size) -> int | None:
    if image_size is None:
        return None
    try:
        n = int(image_size)
    except (TypeError, ValueError):
        raise UsageError(f"image size must be a positive integer (pixels of the longer side), got {image_size!r}") from None
    if n < 1 or n != image_size:
        raise UsageError(f"image size must be a positive integer (pixels of the longer side), got {image_size!r}")
    return n


def read_image(path: str) -> torch.Tensor:
    """``path`` decoded as uint8 RGB (3, H, W); a one-line UsageError when it is not an image."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (-> TorchCodec)
            warnings.simplefilter("ignore", DeprecationWarning)
            img = decode_image(path, mode=ImageReadMode.RGB)
    except Exception as e:  # noqa: BLE001 - RuntimeError from the decoders, OSError, ...: a bad file
        raise corrupt(path, "image", f"{type(e).__name__}: {e}", hint=FIX) from None
    if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3 or min(img.shape[1:]) < 1:
        raise corrupt(path, "8-bit image", f"decoded as {img.dtype} {tuple(img.shape)}", hint=FIX)
    return img


def sanitise(boxes: np.ndarray, height: int, width: int, counts: dict) -> tuple[np.ndarray, np.ndarray]:
    """Clip XYXY ``boxes`` to the image; returns (clipped boxes, keep mask of boxes with positive
    area). ``counts`` gets ``clipped`` (boxes changed by clipping) and ``dropped_empty``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    counts["clipped"] += int(((clipped != boxes).any(axis=1) & keep).sum())
    counts["dropped_empty"] += int((~keep).sum())
    return clipped, keep


def resized_shape(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(H, W) with the longer side ``image_size`` and the aspect ratio kept (rounded, >= 1)."""
    scale = image_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def make_scene(image: torch.Tensor, boxes: np.ndarray, labels, area, difficult, image_size: int | None):
    """(image, target, area_scale) in the canonical form; with ``image_size`` the image is resized
    (longer side ``image_size``, antialias), its boxes follow it through torchvision.transforms.v2,
    ``area`` stays in original pixels and ``area_scale`` is the original pixel area of one resized
    pixel (1 without resizing)."""
    from torchvision.transforms.v2 import functional as F

    h, w = int(image.shape[1]), int(image.shape[2])
    h0, w0 = h, w
    bb = tv_tensors.BoundingBoxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4),
                                  format="XYXY", canvas_size=(h, w))
    if image_size is not None and max(h, w) != image_size:
        size = list(resized_shape(h, w, image_size))
        image = F.resize(image, size, antialias=True)
        bb = F.resize(bb, size)
        h, w = size
    plain = bb.as_subclass(torch.Tensor)
    plain = torch.stack([plain[:, 0].clamp(0, w), plain[:, 1].clamp(0, h),
                         plain[:, 2].clamp(0, w), plain[:, 3].clamp(0, h)], dim=1)
    scale = (h0 * w0) / (h * w)  # original pixels per resized pixel (the SceneSet's area_scale)
    return image, make_target(plain, labels, (h, w), area=area, difficult=difficult), scale


def seeded_split(n: int, seed: int, test_fraction: float, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_index, test_index) of a seeded image-level split of ``n`` images."""
    f = check_fraction(test_fraction)
    if n < 2:
        raise UsageError(f"cannot make a {f:g} test split of {what}: {n} image(s), need at least 2")
    n_test = min(n - 1, max(1, round(f * n)))
    order = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def new_counts() -> dict:
    return {"clipped": 0, "dropped_empty": 0, "images_emptied": 0, "size_mismatch": 0}


def scene_fingerprint(train: SceneSet, test: SceneSet) -> str:
    """sha256 of both SceneSets' ``fingerprint()`` (images, boxes, labels), the class names, the
    ``difficult`` flags and the areas (which ``fingerprint()`` leaves out but the evaluation reads)."""
    h = hashlib.sha256()
    h.update(train.fingerprint().encode())
    h.update(test.fingerprint().encode())
    h.update(json.dumps(list(train.class_names)).encode())
    for s in (train, test):
        for t in s.targets:
            h.update(t["difficult"].numpy().tobytes())
            h.update(t["area"].numpy().tobytes())  # COCO's own areas drive the size buckets
    return h.hexdigest()[:16]


def assemble(name: str, *, reference: str, train: SceneSet, test: SceneSet, split, files, class_source: str,
             image_size: int | None, sanitised: dict, stats: dict, **extra) -> Source:
    """The ``Source`` and its info record (see the ``scenes`` package docstring)."""
    info = {
        "dataset": name,
        "reference": reference,
        "files": [str(p) for p in files],
        "file_names": [os.path.basename(os.path.normpath(str(p))) for p in files],
        "split": split,
        "num_classes": train.num_classes,
        "class_names": list(train.class_names),
        "class_source": class_source,
        "sizes": {"train": len(train), "test": len(test)},
        "instance_counts": {"train": train.instance_counts(), "test": test.instance_counts()},
        "image_counts": {"train": train.image_counts(), "test": test.image_counts()},
        "image_size": image_size,
        "resize": (None if image_size is None else
                   f"longer side resized to {image_size} px (aspect kept, antialias); boxes scaled with the image"),
        "area_ranges": {k: list(v) for k, v in AREA_RANGES.items()},
        "sanitised": dict(sanitised),
        "stats": stats,
        "fingerprint": scene_fingerprint(train, test),
        **extra,
    }
    return Source(name, train, test, info)


def split_stats(items: list[dict], index, keys=("objects", "difficult", "truncated")) -> dict:
    """Per-split counts of the objects as annotated (before sanitising); ``empty_images`` are
    images annotated with no object (those emptied by sanitising are in ``sanitised``)."""
    out = {k: 0 for k in keys}
    out["empty_images"] = 0
    for i in index:
        it = items[i]
        for k in keys:
            out[k] += int(it["stats"].get(k, 0))
        out["empty_images"] += int(len(it["labels"]) == 0)
    return out


def build_sets(items: list[dict], class_names: list[str], train_index, test_index, image_size: int | None,
               counts: dict) -> tuple[SceneSet, SceneSet]:
    """Decode, sanitise and (optionally) resize the images of both splits. ``items`` hold
    ``id``, ``image`` (path), ``boxes`` (XYXY, original pixels), ``labels``, ``difficult`` and
    ``area`` (None = the clipped box area) -- and optionally ``size`` (the (H, W) the
    annotation states)."""
    def one(index) -> SceneSet:
        images, targets, ids, scales = [], [], [], []
        for i in index:
            it = items[i]
            img = read_image(it["image"])
            h, w = int(img.shape[1]), int(img.shape[2])
            if it.get("size") is not None and tuple(it["size"]) != (h, w):
                counts["size_mismatch"] += 1
            boxes, keep = sanitise(it["boxes"], h, w, counts)
            if len(keep) and not keep.any():
                counts["images_emptied"] += 1
            boxes = boxes[keep]
            if it["area"] is None:
                area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            else:
                area = np.asarray(it["area"], dtype=np.float64).reshape(-1)[keep]
            labels = np.asarray(it["labels"], dtype=np.int64).reshape(-1)[keep]
            difficult = np.asarray(it["difficult"], dtype=bool).reshape(-1)[keep]
            img, target, scale = make_scene(img, boxes, labels, area, difficult, image_size)
            images.append(img)
            targets.append(target)
            ids.append(it["id"])
            scales.append(scale)
        return SceneSet(images, targets, list(class_names), ids=ids, area_scale=scales)

    return one(train_index), one(test_index)


# ---------------------------------------------------------------- VOC
