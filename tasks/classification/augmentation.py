"""Standard image augmentation of the classification track, as batched torch ops.

Used two ways: as the protocol's augmentation (the profile's ``augment`` setting, applied to
every method of a cell before the method's own ``augment`` hook) and by the ``augment`` method.

* ``digits``: random affine, rotation U(-10°, 10°) and translation U(-10 %, 10 %) of the size on
  each axis, bilinear, zero fill (dark background), no flip.
* ``natural``: zero-padding by H/8 then a random HxW crop (CIFAR's pad-4 crop for 32 px, as in
  Cao et al.'s LDAM-DRW code), plus a horizontal flip with p = 0.5 unless the dataset is in
  ``NO_FLIP`` (SVHN, digits: flipping changes what a glyph is).
* ``auto``: ``digits`` for 1-channel images or a digits-like dataset name, else ``natural``.
* ``none``: the batch unchanged.

Random parameters come from a CPU ``torch.Generator`` the caller seeds, so a cell is
deterministic for its seed on any device.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

POLICIES = ("auto", "digits", "natural")
PROTOCOL_POLICIES = ("none", *POLICIES)
DIGIT_DATASETS = ("digits", "mnist", "fashion-mnist", "kmnist", "emnist")
NO_FLIP = ("svhn", "digits", "mnist", "kmnist", "emnist")


def resolve_policy(policy: str, channels: int, dataset: str) -> str:
    if policy != "auto":
        return policy
    name = dataset.lower()
    return "digits" if channels == 1 or name in DIGIT_DATASETS else "natural"


def protocol_policy(policy: str, channels: int, dataset: str) -> str:
    """The protocol's policy for this data: ``none``, ``digits`` or ``natural``."""
    if policy not in PROTOCOL_POLICIES:
        raise ValueError(f"augment must be one of {', '.join(PROTOCOL_POLICIES)}, got {policy!r}")
    return "none" if policy == "none" else resolve_policy(policy, channels, dataset)


def apply_policy(policy: str, x: torch.Tensor, gen: torch.Generator, dataset: str) -> torch.Tensor:
    """``x`` (float (B, C, H, W) in [0, 1]) augmented by a resolved ``policy``."""
    if policy == "none":
        return x
    if policy == "digits":
        return affine(x, gen)
    return crop_flip(x, gen, flip=dataset.lower() not in NO_FLIP)


def affine(x: torch.Tensor, gen: torch.Generator, degrees: float = 10.0, translate: float = 0.1):
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(degrees)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * translate * 2  # normalised coords span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)


def crop_flip(x: torch.Tensor, gen: torch.Generator, flip: bool):
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
