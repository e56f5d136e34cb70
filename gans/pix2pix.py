"""pix2pix-style networks for label map -> image translation (what ``label-gan`` trains).

After Isola et al. (pix2pix, CVPR 2017) with two parts of Wang et al. (pix2pixHD, CVPR 2018),
sized for a CPU:

* **Input.** A label map becomes ``K + 1`` one-hot channels (:func:`one_hot`): one per class and
  one for void (``ignore_index``) -- void pixels are still pixels of the real image, so the
  generator is told where they are rather than seeing them as some class; padding is void too.
* **Generator** (:class:`UNetGenerator`): pix2pix's U-Net with ``depth`` down-samplings, each
  a 4x4 stride-2 conv (LeakyReLU 0.2 before it, InstanceNorm after it except on the outermost
  and innermost ones), mirrored by 4x4 stride-2 transposed convs (ReLU before, InstanceNorm
  after) with skip concatenation, ``tanh`` output in [-1, 1]. Channels ``width * 2^i`` capped at
  ``8 * width``. Noise is pix2pix's: dropout (p 0.5) on the ``min(2, depth - 1)`` innermost
  decoder levels, kept on when sampling (the caller seeds the global stream). InstanceNorm, as
  pix2pixHD, rather than pix2pix's BatchNorm: training and sampling normalise the same way,
  whatever the batch. Any H, W that are multiples of ``stride = 2^depth`` (callers pad).
* **Discriminator** (:class:`PatchDiscriminator`): the PatchGAN on the concatenated (label map,
  image): ``layers`` 4x4 stride-2 convs then a 4x4 stride-1 conv and a 4x4 stride-1 conv to
  one channel (a real/fake score per patch; ``layers=1``: 16 px patches, ``2``: 34 px), LeakyReLU
  0.2, InstanceNorm on all but the first. :class:`MultiScaleDiscriminator` is pix2pixHD's: the same
  PatchGAN at ``scales`` resolutions (each halved by 3x3 average pooling) whose losses add up.
  Every discriminator also returns its intermediate features for pix2pixHD's feature matching.

Losses (in ``label_gan.py``): LSGAN (Mao et al. 2017; pix2pixHD's) + ``lambda_l1`` * L1 to the
real image (pix2pix) + ``lambda_fm`` * feature matching (pix2pixHD). pix2pixHD's coarse-to-fine
generator, instance-boundary maps, encoder features and VGG loss are left out (no downloaded
weights, CPU budget).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks.segmentation.losses import one_hot_maps

DROPOUT = 0.5


def one_hot(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 label maps (B, H, W) -> float (B, K + 1, H, W): a channel per class, the last one for
    void (the ignore index, or any other value outside ``0..K-1``)."""
    m = torch.where((masks < 0) | (masks >= num_classes), num_classes, masks)
    return one_hot_maps(m, num_classes + 1)


def _init(module: nn.Module) -> None:
    """pix2pix's initialisation: conv weights N(0, 0.02), biases 0, norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.InstanceNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=True)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: one-hot label map (K + 1 channels) -> image (C channels) in [-1, 1]."""

    def __init__(self, num_classes: int, channels: int, width: int = 32, depth: int = 3):
        super().__init__()
        if depth < 2:
            raise ValueError(f"the U-Net generator needs depth >= 2, got {depth}")
        self.num_classes, self.channels, self.depth = int(num_classes), int(channels), int(depth)
        self.stride = 2 ** self.depth
        chans = [min(width * 2 ** i, 8 * width) for i in range(depth)]
        self.down = nn.ModuleList()
        prev = num_classes + 1
        for i, ch in enumerate(chans):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(prev, ch, 4, 2, 1, bias=(i in (0, depth - 1))))
            if 0 < i < depth - 1:
                layers.append(_norm(ch))
            self.down.append(nn.Sequential(*layers))
            prev = ch
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            cin = chans[i] if i == depth - 1 else 2 * chans[i]
            cout = chans[i - 1] if i > 0 else self.channels
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=(i == 0))]
            if i > 0:
                layers.append(_norm(cout))
            self.up.append(nn.Sequential(*layers))
        self.dropout_levels = min(2, depth - 1)
        _init(self)

    def forward(self, label_maps: torch.Tensor) -> torch.Tensor:
        x, skips = label_maps, []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for level, block in enumerate(self.up):
            if level:
                x = torch.cat([x, skips.pop()], 1)
            x = block(x)
            if level < self.dropout_levels:
                x = F.dropout(x, DROPOUT, training=True)  # pix2pix's noise, on when sampling too
        return torch.tanh(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN on (one-hot label map, image); ``forward`` -> (scores (B, 1, h, w), features)."""

    def __init__(self, in_channels: int, width: int = 32, layers: int = 1):
        super().__init__()
        blocks, prev = [], in_channels
        for i in range(layers + 1):
            ch = min(width * 2 ** i, 8 * width)
            stride = 2 if i < layers else 1
            block: list[nn.Module] = [nn.Conv2d(prev, ch, 4, stride, 1, bias=(i == 0))]
            if i > 0:
                block.append(_norm(ch))
            block.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*block))
            prev = ch
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(prev, 1, 4, 1, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's ``scales`` PatchGANs, the k-th on the input average-pooled k times (3x3,
    stride 2). ``forward`` -> one (scores, features) per scale."""

    def __init__(self, in_channels: int, width: int = 32, layers: int = 1, scales: int = 1):
        super().__init__()
        self.nets = nn.ModuleList(PatchDiscriminator(in_channels, width, layers) for _ in range(scales))

    def forward(self, label_maps: torch.Tensor, images: torch.Tensor):
        x = torch.cat([label_maps, images], 1)
        out = []
        for k, net in enumerate(self.nets):
            if k:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(net(x))
        return out
