"""The canonical in-memory form of an image-classification split."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ImageSet:
    """Images with integer labels.

    ``images`` is a uint8 tensor (N, C, H, W) in [0, 255]; ``labels`` an int64 tensor (N,)
    with values in ``range(len(class_names))``; ``synthetic`` a bool tensor (N,) that is True
    for items a method generated (SMOTE, GANs, ...), so records can count them.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    synthetic: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels shape {tuple(self.labels.shape)} does not match {self.images.shape[0]} images")
        if self.synthetic is None:
            self.synthetic = torch.zeros(len(self.labels), dtype=torch.bool)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def counts(self) -> list[int]:
        """Items per class, in class-index order (synthetic items included)."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def instance_counts(self) -> list[int]:
        """The contract's per-class instance counts: one object per image, so :meth:`counts`."""
        return self.counts()

    def image_counts(self) -> list[int]:
        """The contract's per-class image counts: :meth:`counts` (one label per image)."""
        return self.counts()

    def subset(self, index) -> "ImageSet":
        index = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        return ImageSet(self.images[index], self.labels[index], list(self.class_names), self.synthetic[index])

    def concat(self, images: torch.Tensor, labels: torch.Tensor, synthetic: bool = True) -> "ImageSet":
        """This set with ``images``/``labels`` appended (marked synthetic by default)."""
        labels = torch.as_tensor(labels, dtype=torch.int64)
        flag = torch.full((len(labels),), synthetic, dtype=torch.bool)
        return ImageSet(
            torch.cat([self.images, images.to(torch.uint8)]),
            torch.cat([self.labels, labels]),
            list(self.class_names),
            torch.cat([self.synthetic, flag]),
        )

    def flat(self) -> np.ndarray:
        """Images as a 2-D float64 array (N, C*H*W), the form imbalanced-learn needs."""
        return self.images.reshape(len(self), -1).numpy().astype(np.float64)

    def from_flat(self, x: np.ndarray, labels: np.ndarray, synthetic: np.ndarray) -> "ImageSet":
        """Inverse of ``flat``: round and clip to uint8 and reshape to this set's image shape."""
        imgs = torch.from_numpy(np.clip(np.rint(x), 0, 255).astype(np.uint8)).reshape(-1, *self.image_shape)
        return ImageSet(imgs, torch.from_numpy(np.asarray(labels)), list(self.class_names),
                        torch.from_numpy(np.asarray(synthetic, dtype=bool)))


@dataclass
class Source:
    """A loaded dataset: a training split, an untouched test split and how they were made.

    ``train`` / ``test`` are :class:`ImageSet` s (classification) or
    :class:`~.sceneset.SceneSet` s (detection, segmentation); ``composer`` is set by scene
    sources that can compose new training scenes (``digit-scenes``), None otherwise."""

    name: str
    train: ImageSet
    test: ImageSet
    info: dict = field(default_factory=dict)
    composer: object = None
