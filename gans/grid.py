"""A side-by-side PNG of real and generated samples, one row per class.

Reproduces the qualitative figure of GAN-oversampling papers (e.g. BAGAN, DeepSMOTE): for each
class, ``per_class`` real examples, a blank gap column, then ``per_class`` generated examples of
that class (white cells where a class has fewer).  Written with ``torchvision.utils.save_image``
(no display needed) to a temporary file, then moved into place.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from ..data_recipes.imageset import ImageSet

PADDING = 1


def grid_scale(image_shape, min_side: int = 32) -> int:
    """Nearest-neighbour upscale factor: small images (digits' 8 px) get cells of >= ``min_side`` px."""
    _, H, W = image_shape
    return max(1, -(-min_side // max(H, W)))


def save_png(grid: torch.Tensor, path: Path) -> Path:
    """Write the image tensor ``grid`` (3, H, W) in [0, 1] to ``path`` atomically (world-readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        save_image(grid, tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def grid_size(num_classes: int, image_shape, per_class: int = 8) -> tuple[int, int]:
    """(width, height) in pixels of the PNG ``save_grid`` writes."""
    s = grid_scale(image_shape)
    _, H, W = image_shape
    cols = 2 * per_class + 1
    return cols * (W * s + PADDING) + PADDING, num_classes * (H * s + PADDING) + PADDING


def _pick(images: ImageSet, c: int, k: int, g: torch.Generator) -> torch.Tensor:
    idx = torch.nonzero(images.labels == c).flatten()
    idx = idx[torch.randperm(len(idx), generator=g)[:k]]
    return images.images[idx]


def save_grid(real: ImageSet, fake: ImageSet, path: Path, per_class: int = 8, seed: int = 0) -> Path:
    """Write the real | gap | generated grid of every class to ``path`` (PNG); returns ``path``.

    The examples are a seeded random choice (same ``seed``, same picture); gray images are
    written as RGB.  The size is ``grid_size(num_classes, image_shape, per_class)``.
    """
    if real.image_shape != fake.image_shape or real.num_classes != fake.num_classes:
        raise ValueError("real and fake must have the same image shape and classes")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    C, H, W = real.image_shape
    s = grid_scale(real.image_shape)
    blank = torch.ones(C, H * s, W * s)
    g = torch.Generator().manual_seed(int(seed))
    cells: list[torch.Tensor] = []
    for c in range(real.num_classes):
        for side, gap in ((real, True), (fake, False)):
            picked = _pick(side, c, per_class, g).float().div(255.0)
            picked = picked.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
            cells += list(picked) + [blank] * (per_class - len(picked))
            if gap:
                cells.append(blank)
    return save_png(make_grid(cells, nrow=2 * per_class + 1, padding=PADDING, pad_value=1.0), path)
