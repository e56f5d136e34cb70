"""Standard on-the-fly augmentation suited to the dataset (digits-like or natural images)."""
from __future__ import annotations

import torch

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from ..tasks.classification.augmentation import POLICIES, apply_policy, resolve_policy


@register_method
class Augment(Method):
    """Batched, per-sample random augmentation with torch ops and a per-cell generator.

    * ``digits``: random affine, rotation U(−10°, 10°) and translation U(−10 %, 10 %) of the
      size on each axis, bilinear, zero fill (dark background), no flip.
    * ``natural``: zero-padding by H/8 then a random H×W crop (CIFAR's pad-4 crop), plus a
      horizontal flip with p = 0.5 unless the dataset is in ``NO_FLIP`` (SVHN: digits).
    * ``auto`` (default): ``digits`` for 1-channel images or a digits-like dataset name
      (digits, mnist, fashion-mnist, kmnist), else ``natural``.

    Random parameters come from ``ctx.generator("augment")`` (CPU), created at epoch 0, so a
    cell is deterministic for its seed on any device; the global RNG is not touched.
    """

    name = "augment"
    family = "baseline"
    tracks = ("classification",)
    summary = "Standard augmentation: small random affine for digits, pad-crop + flip for natural images"
    reference = "Standard practice: LeCun et al. 1998 (distorted digits); He et al., CVPR 2016 (CIFAR pad-crop-flip)"
    defaults = {"policy": "auto"}

    _gen: torch.Generator | None = None

    def check(self) -> None:
        if self.params["policy"] not in POLICIES:
            raise UsageError(f"method 'augment': policy must be one of {', '.join(POLICIES)}, got {self.params['policy']!r}")

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch == 0 or self._gen is None:
            self._gen = ctx.generator(self.name)

    def augment(self, batch, ctx: Context):
        x, y = batch
        if self._gen is None:
            self._gen = ctx.generator(self.name)
        policy = resolve_policy(self.params["policy"], x.shape[1], ctx.dataset)
        ctx.note("augment_policy", policy)
        return apply_policy(policy, x, self._gen, ctx.dataset), y
