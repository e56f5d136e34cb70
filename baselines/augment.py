"""Standard on-the-fly augmentation suited to the dataset (digits-like or natural images)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..benchmarks.errors import UsageError
from ..benchmarks.method import Context, Method
from ..benchmarks.plugins import register_method

POLICIES = ("auto", "digits", "natural")
DIGIT_DATASETS = ("digits", "mnist", "fashion-mnist", "kmnist", "emnist")
NO_FLIP = ("svhn", "digits", "mnist", "kmnist", "emnist")  # flipping changes what a digit/glyph is


def resolve_policy(policy: str, channels: int, dataset: str) -> str:
    if policy != "auto":
        return policy
    name = dataset.lower()
    return "digits" if channels == 1 or name in DIGIT_DATASETS else "natural"


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
        if policy == "digits":
            return _affine(x, self._gen), y
        return _crop_flip(x, self._gen, flip=ctx.dataset.lower() not in NO_FLIP), y


def _affine(x: torch.Tensor, gen: torch.Generator, degrees: float = 10.0, translate: float = 0.1):
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(degrees)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * translate * 2  # normalised coords span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)


def _crop_flip(x: torch.Tensor, gen: torch.Generator, flip: bool):
    b, _, h, w = x.shape
    pad = max(h // 8, 1)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen).to(x.device)
    flips = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (B, W)
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    out = out.permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)
    if flip:
        out = torch.where(flips[:, None, None, None], out.flip(-1), out)
    return out
