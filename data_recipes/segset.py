"""The canonical in-memory form of a pixel-level (segmentation) split: :class:`SegSet`.

``images[i]`` is a uint8 tensor (C, H, W) and ``masks[i]`` an int64 tensor (H, W) of class indices
``0..K-1``, with ``ignore_index`` (255 by default) marking void pixels that no loss or metric
counts. Images of one set may differ in size. ``synthetic`` (N,) flags images a method made or
changed; ``ids`` names each image (its file stem).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class SegSet:
    images: list[torch.Tensor]
    masks: list[torch.Tensor]
    class_names: list[str]
    ignore_index: int = 255
    synthetic: torch.Tensor = field(default=None)  # type: ignore[assignment]
    ids: list[str] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if len(self.images) != len(self.masks):
            raise ValueError(f"{len(self.images)} images but {len(self.masks)} masks")
        for i, (img, m) in enumerate(zip(self.images, self.masks)):
            if img.dtype != torch.uint8 or img.ndim != 3:
                raise ValueError(f"image {i} must be uint8 (C, H, W), got {img.dtype} {tuple(img.shape)}")
            if m.dtype != torch.int64 or tuple(m.shape) != tuple(img.shape[1:]):
                raise ValueError(f"mask {i} must be int64 {tuple(img.shape[1:])}, got {m.dtype} {tuple(m.shape)}")
        if self.synthetic is None:
            self.synthetic = torch.zeros(len(self.images), dtype=torch.bool)
        if self.ids is None:
            self.ids = [str(i) for i in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def pixel_counts(self) -> list[int]:
        """Labelled pixels per class (void left out)."""
        counts = torch.zeros(self.num_classes, dtype=torch.int64)
        for m in self.masks:
            v = m[m != self.ignore_index]
            counts += torch.bincount(v.reshape(-1), minlength=self.num_classes)
        return counts.tolist()

    def instance_counts(self) -> list[int]:
        """The contract's per-class counts on this track: labelled pixels per class."""
        return self.pixel_counts()

    def image_counts(self) -> list[int]:
        """Images holding at least one pixel of each class."""
        counts = torch.zeros(self.num_classes, dtype=torch.int64)
        for m in self.masks:
            present = m[m != self.ignore_index].unique()
            counts[present] += 1
        return counts.tolist()

    def subset(self, index) -> "SegSet":
        index = [int(i) for i in np.asarray(index).reshape(-1)]
        return SegSet([self.images[i] for i in index], [self.masks[i] for i in index], list(self.class_names),
                      self.ignore_index, self.synthetic[index] if index else self.synthetic[:0],
                      [self.ids[i] for i in index])

    def fingerprint(self) -> str:
        """sha256 of every image and mask, first 16 hex chars."""
        h = hashlib.sha256()
        for img, m in zip(self.images, self.masks):
            h.update(str(tuple(img.shape)).encode())
            h.update(memoryview(np.ascontiguousarray(img.numpy())).cast("B"))
            h.update(m.numpy().tobytes())
        return h.hexdigest()[:16]
