"""The canonical in-memory form of an object-level (detection) split: :class:`SceneSet`.

An item is one image with its objects. ``images[i]`` is a uint8 tensor (C, H, W) -- images of
one set may differ in size -- and ``targets[i]`` a dict of per-object tensors, ``n`` objects:

===============  ==========================================================================
key              value
===============  ==========================================================================
``boxes``        ``tv_tensors.BoundingBoxes`` (n, 4), XYXY, float32, ``canvas_size=(H, W)``;
                 pixel coordinates, ``x2 > x1``, ``y2 > y1``, inside the image
``labels``       int64 (n,), class indices ``0..K-1`` (no background class)
``area``         float32 (n,): the area the COCO size buckets read (see the source's
                 ``info["area_ranges"]``)
``occlusion``    float32 (n,) in [0, 1]: the share of the object hidden by others (0 unknown)
``difficult``    bool (n,): VOC's ``difficult`` flag; ignored by the evaluation (COCO's
                 ``iscrowd`` semantics: neither a hit nor a miss)
``masks``        optional ``tv_tensors.Mask`` (n, H, W) uint8 {0, 1}: the visible pixels
``synthetic``    bool (n,): objects a method generated or pasted
===============  ==========================================================================

An image with no object has ``boxes`` of shape (0, 4) and ``labels`` of shape (0,) (what the
torchvision detectors expect; never a dummy box). ``synthetic`` (N,) flags images a method
made or changed. ``ids`` names each image (file stem, or ``"<set>-<index>"``). ``area_scale`` (N,)
converts a box area in this image's pixels to the units of ``area``: 1 unless a real set was
resized (``--image-size``), where ``area`` stays in original pixels (COCO's size buckets keep their
meaning) and the evaluation scales each detection's area by it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision import tv_tensors

OBJECT_KEYS = ("boxes", "labels", "area", "occlusion", "difficult", "synthetic")


def make_target(boxes, labels, canvas_size: tuple[int, int], *, area=None, occlusion=None,
                difficult=None, masks=None, synthetic=None) -> dict:
    """A target dict in the canonical form (missing per-object fields get their defaults:
    ``area`` = box area, ``occlusion`` 0, ``difficult`` / ``synthetic`` False)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = len(boxes)
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(int(v) for v in canvas_size)),
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(n),
        "area": (torch.as_tensor(area, dtype=torch.float32).reshape(n) if area is not None
                 else (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])),
        "occlusion": (torch.zeros(n) if occlusion is None
                      else torch.as_tensor(occlusion, dtype=torch.float32).reshape(n)),
        "difficult": (torch.zeros(n, dtype=torch.bool) if difficult is None
                      else torch.as_tensor(difficult, dtype=torch.bool).reshape(n)),
        "synthetic": (torch.zeros(n, dtype=torch.bool) if synthetic is None
                      else torch.as_tensor(synthetic, dtype=torch.bool).reshape(n)),
    }
    if masks is not None:
        target["masks"] = tv_tensors.Mask(torch.as_tensor(masks, dtype=torch.uint8).reshape(n, *canvas_size))
    return target


def select_objects(target: dict, keep) -> dict:
    """``target`` with only the objects ``keep`` (a bool mask or indices)."""
    keep = torch.as_tensor(keep)
    out = {k: v[keep] for k, v in target.items() if k not in ("boxes", "masks")}
    out["boxes"] = tv_tensors.wrap(target["boxes"].as_subclass(torch.Tensor)[keep], like=target["boxes"])
    if "masks" in target:
        out["masks"] = tv_tensors.Mask(target["masks"].as_subclass(torch.Tensor)[keep])
    return out


@dataclass
class SceneSet:
    """Images with their objects (see the module docstring for the target format)."""

    images: list[torch.Tensor]
    targets: list[dict]
    class_names: list[str]
    synthetic: torch.Tensor = field(default=None)  # type: ignore[assignment]
    ids: list[str] = field(default=None)  # type: ignore[assignment]
    area_scale: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if len(self.images) != len(self.targets):
            raise ValueError(f"{len(self.images)} images but {len(self.targets)} targets")
        for i, (img, t) in enumerate(zip(self.images, self.targets)):
            if img.dtype != torch.uint8 or img.ndim != 3:
                raise ValueError(f"image {i} must be uint8 (C, H, W), got {img.dtype} {tuple(img.shape)}")
            missing = [k for k in OBJECT_KEYS if k not in t]
            if missing:
                raise ValueError(f"target {i} lacks {', '.join(missing)} (use make_target)")
        if self.synthetic is None:
            self.synthetic = torch.zeros(len(self.images), dtype=torch.bool)
        if self.ids is None:
            self.ids = [str(i) for i in range(len(self.images))]
        if self.area_scale is None:
            self.area_scale = torch.ones(len(self.images), dtype=torch.float64)
        self.area_scale = torch.as_tensor(self.area_scale, dtype=torch.float64).reshape(len(self.images))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0]) if self.images else 1

    def instance_counts(self) -> list[int]:
        """Objects per class (synthetic ones included)."""
        labels = [t["labels"] for t in self.targets]
        flat = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
        return torch.bincount(flat, minlength=self.num_classes).tolist()

    def image_counts(self) -> list[int]:
        """Images holding at least one object of each class."""
        counts = torch.zeros(self.num_classes, dtype=torch.int64)
        for t in self.targets:
            counts[t["labels"].unique()] += 1
        return counts.tolist()

    def counts(self) -> list[int]:
        """Instance counts (what a record's ``class_counts`` lists)."""
        return self.instance_counts()

    def objects_per_image(self) -> list[int]:
        return [len(t["labels"]) for t in self.targets]

    def subset(self, index) -> "SceneSet":
        index = [int(i) for i in np.asarray(index).reshape(-1)]
        return SceneSet([self.images[i] for i in index], [self.targets[i] for i in index],
                        list(self.class_names), self.synthetic[index] if index else self.synthetic[:0],
                        [self.ids[i] for i in index], self.area_scale[index] if index else self.area_scale[:0])

    def concat(self, images: list[torch.Tensor], targets: list[dict], synthetic: bool = True,
               ids: list[str] | None = None, area_scale=None) -> "SceneSet":
        """This set with ``images`` / ``targets`` appended (marked synthetic by default;
        ``area_scale`` 1 unless given)."""
        ids = ids if ids is not None else [f"added-{i}" for i in range(len(images))]
        scale = torch.ones(len(images), dtype=torch.float64) if area_scale is None else area_scale
        return SceneSet(self.images + list(images), self.targets + list(targets), list(self.class_names),
                        torch.cat([self.synthetic, torch.full((len(images),), synthetic, dtype=torch.bool)]),
                        self.ids + list(ids), torch.cat([self.area_scale, torch.as_tensor(scale, dtype=torch.float64)]))

    def fingerprint(self) -> str:
        """sha256 of every image and its boxes and labels, first 16 hex chars."""
        h = hashlib.sha256()
        for img, t in zip(self.images, self.targets):
            h.update(str(tuple(img.shape)).encode())
            h.update(memoryview(np.ascontiguousarray(img.numpy())).cast("B"))
            h.update(t["boxes"].as_subclass(torch.Tensor).numpy().tobytes())
            h.update(t["labels"].numpy().tobytes())
        return h.hexdigest()[:16]
