"""The (image, label map) discriminator of the segmentation GANs (``adv-seg``, ``scgan``) and the
segmenter wrapper that lets their ``adversary`` hook reuse the training forward.

After Luc, Couprie, Chintala & Verbeek (Semantic Segmentation using Adversarial Networks, NIPS 2016
workshop), whose adversary tells ground-truth label maps from the segmenter's, given the image.

**Encodings** of the label map a pair carries (the paper's section 3.2):

* ``basic``: the K class probabilities as they are (real pairs: the one-hot ground truth);
* ``product``: the image multiplied by each class's probability map, C * K channels (the
  paper's "product": the label map splits the image into class-masked copies);
* ``scaling``: real pairs get, at each labelled pixel, ``max(tau, s_y)`` on the true class ``y``
  and the segmenter's other probabilities scaled to fill the rest (``s_c (1 - that) / (1 - s_y)``),
  so the discriminator cannot win by spotting exact one-hot vectors (the paper's tau 0.9).

**Void.** A void pixel (``ignore_index``; also the padding of a batch of unequal images) has no
label: its label vector is zero in real *and* fake pairs (the segmenter's probabilities are
masked out there too), so void carries nothing that tells the two apart. The image channels
are kept.

**Network** (the paper's Stanford Background adversary, widths scaled by ``width``; the paper
uses 64): a label branch (5x5 conv to ``width`` channels) and an image branch (5x5 conv to
``width / 4``, 5x5 conv to ``width``), concatenated, then 3x3 conv ``2 width``, 2x max-pool, 3x3
conv ``4 width``, 2x max-pool, 3x3 conv ``8 width``, 3x3 conv to one logit map, ReLUs between,
no normalisation (so the real and fake batches cannot leak into each other through batch
statistics); the pair's logit is the map's spatial mean. Fully convolutional: any image size,
1- or 3-channel images, any K. Image and (encoded) label map are first average-pooled by
``downsample`` (2): the paper's adversary sees label maps at the segmenter's output resolution
(its segmenters predict at reduced resolution; the ground truth is down-sampled to match), and
the suite's U-Net classifies at half resolution too; it also quarters the cost.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks.segmentation.losses import one_hot_maps

ENCODINGS = ("basic", "product", "scaling")


def valid_mask(labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """(B, 1, H, W) float: 1 on labelled pixels, 0 on void / padding."""
    return (labels != ignore_index).unsqueeze(1).float()


def one_hot(labels: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(B, K, H, W) float one-hot of ``labels`` (B, H, W); zero vectors on void pixels."""
    return one_hot_maps(torch.where(labels != ignore_index, labels, -1), num_classes)


def scaled_truth(labels: torch.Tensor, probs: torch.Tensor, tau: float, ignore_index: int) -> torch.Tensor:
    """The paper's ``scaling`` encoding of the ground truth: the true class gets ``max(tau, s_y)``,
    the other classes ``s_c * (1 - max(tau, s_y)) / (1 - s_y)``; zero on void. ``probs`` detached."""
    K = probs.shape[1]
    hot = one_hot(labels, K, ignore_index)
    s_true = (probs * hot).sum(1, keepdim=True)
    top = torch.clamp(s_true, min=tau)
    rest = probs * (1.0 - top) / (1.0 - s_true).clamp_min(1e-6)
    return (hot * top + (1.0 - hot) * rest) * valid_mask(labels, ignore_index)


def encode(x: torch.Tensor, label_map: torch.Tensor, encoding: str) -> torch.Tensor:
    """What the discriminator's label branch sees: ``label_map`` (B, K, H, W) already masked on
    void, or (``product``) the image times each class map, (B, C * K, H, W)."""
    if encoding == "product":
        B, C, H, W = x.shape
        return (x.unsqueeze(2) * label_map.unsqueeze(1)).reshape(B, C * label_map.shape[1], H, W)
    return label_map


class PairDiscriminator(nn.Module):
    """``forward(x, encoded_label_map) -> (B,)`` logits (see the module docstring)."""

    def __init__(self, in_channels: int, num_classes: int, encoding: str = "basic", width: int = 8,
                 downsample: int = 2):
        super().__init__()
        self.downsample = int(downsample)
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        label_in = in_channels * num_classes if encoding == "product" else num_classes
        w, small = int(width), max(int(width) // 4, 1)
        self.label_branch = nn.Sequential(nn.Conv2d(label_in, w, 5, padding=2), nn.ReLU(inplace=True))
        self.image_branch = nn.Sequential(nn.Conv2d(in_channels, small, 5, padding=2), nn.ReLU(inplace=True),
                                          nn.Conv2d(small, w, 5, padding=2), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(4 * w, 8 * w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8 * w, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample, ceil_mode=True)
            label_map = F.avg_pool2d(label_map, self.downsample, ceil_mode=True)
        h = torch.cat([self.image_branch(x), self.label_branch(label_map)], 1)
        return self.trunk(h).mean((1, 2, 3))


class LogitCache(nn.Module):
    """A segmenter that remembers the logits of its last training forward, so the ``adversary``
    hook can build the adversarial term on the very forward the track's loss used (a second
    ``segmenter(x)`` would run BatchNorm in training mode again: its running statistics would
    move twice per step and the two forwards would differ). ``info()`` and other attributes are
    the segmenter's; predictions are unchanged."""

    def __init__(self, segmenter: nn.Module):
        super().__init__()
        self.segmenter = segmenter
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("segmenter"), name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.segmenter(x)
        self._last = (x, out) if self.training and torch.is_grad_enabled() else None
        return out

    def take(self, x: torch.Tensor) -> torch.Tensor | None:
        """The logits of the last training forward if it was on this very ``x`` (then forgotten)."""
        last, self._last = self._last, None
        if last is not None and last[0] is x:
            return last[1]
        return None

    def info(self) -> dict:
        return self.segmenter.info()
