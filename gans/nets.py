"""DCGAN-style generator and discriminator sized from the image shape, and shared GAN helpers.

Sizes. A side must be ``s · 2^k`` with ``4 <= s <= 8`` and ``k >= 1``, the same ``k`` for height
and width (``k`` is taken as large as possible): 8, 16, 32, 64, ... start from a 4×4 map; 28, 14,
56, 112, 224 from 7×7; 10, 20, 40 from 5×5; 12, 24, 48 from 6×6. Any other size (e.g. 9, 18,
below 8) is a :class:`UsageError` naming these; no resizing happens behind the user's back.

Generator (Radford et al. 2016): ``z ⊕ label embedding`` → linear → (ch, s, s) → BatchNorm+ReLU
→ ``k`` × [ConvTranspose2d(k4, s2, p1) + BatchNorm + ReLU] → Conv2d(3×3) → tanh, i.e. images in
[-1, 1] (:func:`to_uint8` maps them to uint8). ``width`` is the channel count of the smallest
map; channels halve at every upsampling, never below 16 (:func:`channels`): 8 px 64→32,
28 px 64→32→16, 32 px 64→32→16→16. Cost grows with the resolution, not with ``width · 2^k``,
which keeps the ``quick`` profile on a laptop CPU; raise ``width`` for the ``paper`` profile.

Discriminator: ``k`` × [Conv2d(k4, s2, p1) + norm + LeakyReLU(0.2)] back down to the starting
map (no norm on the first block, as in DCGAN; channels mirror the generator's, ending at
``width``), flattened to features ``h``; heads: one
real/fake logit ``w·h + b`` plus, with ``conditioning="projection"`` (Miyato & Koyama 2018),
``<embed(y), h>``; with ``conditioning="channel"`` a learned per-class H×W map is concatenated
to the input as an extra channel (Mirza & Osindero's "y fed to D"); ``aux=True`` adds
``num_classes`` auxiliary class logits (ACGAN). ``norm="batch"`` for the GAN discriminators,
``norm="layer"`` (GroupNorm with one group = LayerNorm over (C, H, W) with per-channel affine,
independent of the spatial size) or ``"none"`` for the WGAN-GP critic, whose gradient penalty is
per-sample and must not mix items through batch statistics.

Discriminators see images scaled to [-1, 1] (:func:`to_signed`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..benchmarks.contract.errors import UsageError
from ..data_recipes.imageset import ImageSet

SUPPORTED_SIZES = ("each side s·2^k with 4 <= s <= 8 and the same k >= 1 for height and width, e.g. "
                   "8, 16, 32, 64 (from 4), 10, 20, 40 (from 5), 12, 24, 48 (from 6), 14, 28, 56, 224 (from 7)")


def layout(image_shape) -> tuple[int, int, int]:
    """(start height, start width, number of ×2 upsamplings) for ``image_shape`` (C, H, W)."""
    C, H, W = (int(v) for v in image_shape)
    k = 0
    while H % 2 ** (k + 1) == 0 and W % 2 ** (k + 1) == 0 and H // 2 ** (k + 1) >= 4 and W // 2 ** (k + 1) >= 4:
        k += 1
    h0, w0 = H // 2 ** k, W // 2 ** k
    if C < 1 or k < 1 or h0 > 8 or w0 > 8:
        raise UsageError(f"the DCGAN-style GAN networks do not support {C}x{H}x{W} images "
                         f"(supported: {SUPPORTED_SIZES})")
    return h0, w0, k


def channels(width: int, k: int) -> list[int]:
    """Channels at each resolution, from the starting map (``width``) to the full size: halved
    at every ×2 upsampling, never below ``min(16, width)``."""
    return [max(width >> i, min(16, width)) for i in range(k + 1)]


def _init(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """DCGAN generator; ``num_classes=0`` makes it unconditional. Output in [-1, 1]."""

    def __init__(self, image_shape, num_classes: int = 0, z_dim: int = 64, width: int = 64, emb_dim: int = 16):
        super().__init__()
        h0, w0, k = layout(image_shape)
        C = int(image_shape[0])
        self.z_dim, self.num_classes, self.start = int(z_dim), int(num_classes), (h0, w0)
        self.image_shape = tuple(int(v) for v in image_shape)
        chans = channels(width, k)
        self.embed = nn.Embedding(num_classes, emb_dim) if num_classes else None
        in_dim = self.z_dim + (emb_dim if num_classes else 0)
        self.project = nn.Sequential(nn.Linear(in_dim, chans[0] * h0 * w0, bias=False))
        self.bn0 = nn.BatchNorm2d(chans[0])
        blocks = []
        for a, b in zip(chans[:-1], chans[1:]):
            blocks += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(chans[-1], C, 3, 1, 1)
        _init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.project(z).view(len(z), -1, *self.start)
        x = torch.relu(self.bn0(x))
        return torch.tanh(self.out(self.blocks(x)))


class Discriminator(nn.Module):
    """DCGAN discriminator / critic. ``forward(x, y)`` → (real/fake logit (B,), aux logits or None)."""

    def __init__(self, image_shape, num_classes: int = 0, width: int = 64, norm: str = "batch",
                 conditioning: str | None = None, aux: bool = False):
        super().__init__()
        h0, w0, k = layout(image_shape)
        C, H, W = (int(v) for v in image_shape)
        if conditioning not in (None, "projection", "channel"):
            raise ValueError(f"unknown conditioning {conditioning!r}")
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"unknown norm {norm!r}")
        self.conditioning, self.shape = conditioning, (C, H, W)
        chans = channels(width, k)[::-1][1:]  # mirror of the generator, ending at width
        self.label_map = nn.Embedding(num_classes, H * W) if conditioning == "channel" else None
        layers, prev = [], C + (1 if conditioning == "channel" else 0)
        for i, ch in enumerate(chans):
            layers.append(nn.Conv2d(prev, ch, 4, 2, 1, bias=(i == 0 or norm == "none")))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(ch))
            elif i > 0 and norm == "layer":
                layers.append(nn.GroupNorm(1, ch))
            layers.append(nn.LeakyReLU(0.2, True))
            prev = ch
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat = prev * h0 * w0
        self.head = nn.Linear(feat, 1)
        self.project = nn.Embedding(num_classes, feat) if conditioning == "projection" else None
        self.aux = nn.Linear(feat, num_classes) if aux else None
        _init(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        if self.label_map is not None:
            x = torch.cat([x, self.label_map(labels).view(len(x), 1, *self.shape[1:])], dim=1)
        h = self.features(x)
        out = self.head(h).squeeze(1)
        if self.project is not None:
            out = out + (self.project(labels) * h).sum(dim=1)
        return out, (self.aux(h) if self.aux is not None else None)


# ---------------------------------------------------------------- shared helpers
def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255] (rounded, clipped)."""
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def noise(n: int, z_dim: int, gen: torch.Generator, device) -> torch.Tensor:
    """Standard normal latents drawn on the CPU from ``gen`` (device-independent), then moved."""
    return torch.randn(n, z_dim, generator=gen).to(device)


class RealBatches:
    """Draws real training batches (with replacement) from a seeded CPU generator.

    ``sampling="data"``: indices uniform over the items, i.e. classes in their imbalanced
    proportions (what the survey's cGAN/ACGAN/WGAN-GP oversamplers do); ``"balanced"``: each
    class equally likely, items uniform within it. Images stay uint8 on the device; a batch
    is returned as float [-1, 1] with its labels.
    """

    def __init__(self, train: ImageSet, batch_size: int, gen: torch.Generator, device, sampling: str = "data"):
        self.images = train.images.to(device)
        self.labels = train.labels.to(device)
        self.batch_size, self.gen, self.device = int(batch_size), gen, device
        if sampling == "balanced":
            counts = torch.bincount(train.labels, minlength=train.num_classes).double()
            self.weights = (1.0 / counts.clamp(min=1))[train.labels]
        elif sampling == "data":
            self.weights = None
        else:
            raise ValueError(f"unknown sampling {sampling!r}")

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.weights is None:
            idx = torch.randint(len(self.labels), (self.batch_size,), generator=self.gen)
        else:
            idx = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.gen)
        idx = idx.to(self.device)
        return to_signed(self.images[idx]), self.labels[idx]


@torch.no_grad()
def sample_conditional(generator: Generator, labels: torch.Tensor, gen: torch.Generator, device,
                       chunk: int = 1024) -> torch.Tensor:
    """uint8 images from a conditional generator, one per label; all latents drawn up front."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    z = torch.randn(len(labels), generator.z_dim, generator=gen)
    out = []
    for i in range(0, len(labels), chunk):
        out.append(to_uint8(generator(z[i:i + chunk].to(device), labels[i:i + chunk].to(device))).cpu())
    return torch.cat(out) if out else torch.zeros((0, *generator.image_shape), dtype=torch.uint8)
