"""Copy-paste on label maps (the segmentation form of ``copy-paste``): class regions of one batch
image pasted into another, after Ghiasi et al. 2021's Simple Copy-Paste.

For each image ``i`` of a batch another image ``j`` is drawn (seeded); ``j`` and its label map are
scale-jittered (a factor in ``[scale_min, scale_max]``; bilinear for the image, nearest for the
labels) and placed at a uniform random offset (cropped / padded to ``i``'s size, as the paper's
jitter crops / pads); ``i`` itself is jittered the same way with its own draw first
(``jitter_destination``, as the paper jitters both images; its padding becomes void pixels); then
each pasteable class present in the placed map is chosen with probability ``paste_p`` and all its
pixels overwrite ``i``'s image and labels. Void pixels and padding are never pasted. The pasted
labels are exact (they are the source's own labels).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def uniform_offset(u: float, canvas: int, size: int) -> int:
    """A uniform integer position (``u`` in [0, 1)) of a ``size``-long source on a ``canvas``-long
    axis: inside it when smaller, covering it (a random crop) when larger."""
    size = max(1, size)
    lo, hi = min(0, canvas - size), max(0, canvas - size)
    return lo + min(math.floor(u * (hi - lo + 1)), hi - lo)


def placed(img: torch.Tensor, lab: torch.Tensor, scale: float, offset: tuple[int, int], size: tuple[int, int],
           ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``img`` (C, h, w) and ``lab`` (h, w) resized by ``scale`` and placed at ``offset`` on a
    ``size`` canvas; uncovered pixels get 0 and ``ignore_index``."""
    h, w = lab.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != (h, w):
        img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
        lab = F.interpolate(lab[None, None].float(), size=(nh, nw), mode="nearest")[0, 0].long()
    H, W = size
    out_i = torch.zeros(img.shape[0], H, W, dtype=img.dtype, device=img.device)
    out_l = torch.full((H, W), ignore_index, dtype=lab.dtype, device=lab.device)
    oy, ox = offset
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(H, oy + nh), min(W, ox + nw)
    if y1 > y0 and x1 > x0:
        out_i[:, y0:y1, x0:x1] = img[:, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        out_l[y0:y1, x0:x1] = lab[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return out_i, out_l


def paste_regions(x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor, gen: torch.Generator, *,
                  paste_p: float, scale_min: float, scale_max: float, ignore_index: int,
                  jitter_destination: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The batch ``(x, y)`` with regions pasted (see the module docstring); returns the new batch and
    the number of class regions pasted."""
    n = len(x)
    if n < 2 or not len(classes):
        return x, y, 0
    x, y = x.clone(), y.clone()
    src_x, src_y = x.clone(), y.clone()
    classes = classes.to(y.device)
    pasted = 0
    H, W = y.shape[-2:]

    def draw(h: int, w: int) -> tuple[float, tuple[int, int]]:
        scale = scale_min + (scale_max - scale_min) * float(torch.rand(1, generator=gen))
        u = torch.rand(2, generator=gen).tolist()
        return scale, (uniform_offset(u[0], H, round(h * scale)), uniform_offset(u[1], W, round(w * scale)))

    for i in range(n):
        j = (i + 1 + int(torch.randint(n - 1, (1,), generator=gen))) % n
        if jitter_destination:
            x[i], y[i] = placed(src_x[i], src_y[i], *draw(H, W), (H, W), ignore_index)
        img, lab = placed(src_x[j], src_y[j], *draw(*src_y[j].shape), (H, W), ignore_index)
        present = [c for c in classes.tolist() if bool((lab == c).any())]
        pick = torch.rand(len(present), generator=gen) < paste_p
        chosen = [c for c, k in zip(present, pick.tolist()) if k]
        if not chosen:
            continue
        m = torch.isin(lab, torch.tensor(chosen, device=lab.device))
        x[i][:, m] = img[:, m]
        y[i][m] = lab[m]
        pasted += len(chosen)
    return x, y, pasted
