"""Convolutional encoder / decoder pairs sized from the input, shared by BAGAN, DeepSMOTE and the CVAE.

DCGAN-style (the DeepSMOTE encoder/decoder of Dablain et al.: 4x4 kernels, stride 2, channel
width doubling per layer, BatchNorm after every layer but the first, LeakyReLU(0.2) in the
encoder, ReLU in the decoder), **scaled down for CPU**: the first layer has ``width`` channels
(default 32 instead of DeepSMOTE's 64) and the width doubles per stride-2 layer up to
``8 * width``.

How the layers are sized from an input of (C, H, W):

* a stride-2 layer (k4 s2 p1, exactly halving) is added while both sides are even and larger
  than 4 (the first two may also halve a 4-px side, so a small image still gets two), at most
  4 of them: 8 px -> 4 -> 2; 16 -> 8 -> 4; 28 -> 14 -> 7; 32 -> 16 -> 8 -> 4;
* the trunk has at least two conv layers: a side that cannot be halved twice gets 3x3
  stride-1 layers to make up the count (e.g. 7 px, 6 px);
* a linear layer maps the flattened trunk features to the latent code (``out_features``
  outputs, e.g. 2 x latent for a VAE's mean and log-variance).

The decoder mirrors the encoder exactly (linear -> (channels, h, w) -> transposed convs, k4 s2
p1 exactly doubling), so it reproduces H x W for every size above, and ends in a sigmoid:
decoded images lie in [0, 1] (images are fed as ``uint8 / 255``). Optional class conditioning
(the CVAE): ``cond`` one-hot channels broadcast over the image and concatenated to the encoder's
input, and ``cond`` one-hot entries concatenated to the decoder's latent input.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def _plan(channels: int, height: int, width_px: int, width: int, max_down: int = 4):
    """Encoder layers as (in_ch, out_ch, stride) plus the trunk's output (ch, h, w)."""
    layers: list[tuple[int, int, int]] = []
    h, w, ch = height, width_px, channels

    def can_down() -> bool:
        downs = sum(s == 2 for *_, s in layers)
        if h % 2 or w % 2 or downs >= max_down:
            return False
        # halve while the map is larger than 4x4; the first two halvings may go down to 2x2
        return min(h, w) > 4 or (downs < 2 and min(h, w) >= 4)

    out = width
    while True:
        if can_down():
            layers.append((ch, out, 2))
            h, w = h // 2, w // 2
        elif len(layers) < 2:
            layers.append((ch, out, 1))
        else:
            break
        ch, out = out, min(out * 2, 8 * width)
    return layers, (ch, h, w)


class Encoder(nn.Module):
    """Images in [0, 1] (B, C, H, W) -> codes (B, out_features); optional one-hot conditioning."""

    def __init__(self, image_shape: tuple[int, int, int], latent: int, width: int = 32, cond: int = 0,
                 out_features: int | None = None):
        super().__init__()
        C, H, W = image_shape
        self.cond = int(cond)
        plan, (ch, h, w) = _plan(C + self.cond, H, W, width)
        blocks: list[nn.Module] = []
        for i, (cin, cout, stride) in enumerate(plan):
            k, p = (4, 1) if stride == 2 else (3, 1)
            blocks.append(nn.Conv2d(cin, cout, k, stride, p, bias=i == 0))
            if i > 0:
                blocks.append(nn.BatchNorm2d(cout))
            blocks.append(nn.LeakyReLU(0.2))
        blocks.append(nn.Flatten())
        self.trunk = nn.Sequential(*blocks)
        self.features_dim = ch * h * w
        self.fc = nn.Linear(self.features_dim, out_features or latent)

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The flattened trunk features (what BAGAN's discriminator head reads)."""
        x = x * 2.0 - 1.0
        if self.cond:
            x = torch.cat([x, cond[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return self.trunk(x)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.features(x, cond))


class Decoder(nn.Module):
    """Codes (B, latent) -> images in [0, 1] (B, C, H, W), the mirror of :class:`Encoder`."""

    def __init__(self, image_shape: tuple[int, int, int], latent: int, width: int = 32, cond: int = 0):
        super().__init__()
        C, H, W = image_shape
        self.cond = int(cond)
        self.latent = int(latent)
        self.image_shape = (C, H, W)
        plan, (ch, h, w) = _plan(C, H, W, width)
        self.shape = (ch, h, w)
        self.fc = nn.Linear(latent + self.cond, ch * h * w, bias=False)
        self.fc_norm = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU())
        blocks: list[nn.Module] = []
        for i, (cin, cout, stride) in reversed(list(enumerate(plan))):
            # mirror of encoder layer i: maps cout -> cin channels at the layer's input size
            if stride == 2:
                blocks.append(nn.ConvTranspose2d(cout, cin, 4, 2, 1, bias=i == 0))
            else:
                blocks.append(nn.Conv2d(cout, cin, 3, 1, 1, bias=i == 0))
            if i > 0:
                blocks += [nn.BatchNorm2d(cin), nn.ReLU()]
        blocks.append(nn.Sigmoid())
        self.deconv = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond:
            z = torch.cat([z, cond], dim=1)
        x = self.fc(z).view(len(z), *self.shape)
        return self.deconv(self.fc_norm(x))


# ---------------------------------------------------------------- helpers shared by the methods
def to_unit(images: torch.Tensor, device=None) -> torch.Tensor:
    """uint8 images -> float in [0, 1] (on ``device``)."""
    return images.to(device=device, dtype=torch.float32) / 255.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 on the CPU (rounded, clipped)."""
    return (x.detach().float().cpu() * 255.0).round().clamp(0, 255).to(torch.uint8)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return nn.functional.one_hot(labels, num_classes).float()


def batch_indices(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless mini-batches of item indices: successive seeded permutations, tails dropped.

    The batch size is ``min(batch_size, n)``, so a set smaller than one batch is used whole.
    """
    size = max(1, min(int(batch_size), n))
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - size + 1, size):
            yield perm[start:start + size]


@torch.no_grad()
def encode(encoder: nn.Module, images: torch.Tensor, device=None, batch_size: int = 512,
           cond: torch.Tensor | None = None) -> torch.Tensor:
    """Codes of uint8 ``images`` with ``encoder`` in eval mode (its mode is restored after)."""
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_unit(images[start:start + batch_size], device)
        c = None if cond is None else cond[start:start + batch_size].to(device)
        out.append(encoder(x, c) if c is not None else encoder(x))
    encoder.train(was_training)
    if not out:
        return torch.zeros((0, encoder.fc.out_features), device=device)
    return torch.cat(out)


@torch.no_grad()
def decode(decoder: nn.Module, z: torch.Tensor, batch_size: int = 512,
           cond: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images (CPU) decoded from codes ``z`` in batches (the caller sets the mode)."""
    out = []
    for start in range(0, len(z), batch_size):
        c = None if cond is None else cond[start:start + batch_size]
        out.append(to_uint8(decoder(z[start:start + batch_size], c) if c is not None
                            else decoder(z[start:start + batch_size])))
    if not out:
        return torch.zeros((0, *decoder.image_shape), dtype=torch.uint8)
    return torch.cat(out)


def adam(params, lr: float, betas=(0.5, 0.999)) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=float(lr), betas=betas)


def postfix_every(step: int, total: int, every: int = 20) -> bool:
    return step % every == 0 or step == total - 1
