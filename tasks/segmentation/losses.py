"""Pixel losses that leave void out: adapters around MONAI's losses, Lovász-softmax, median-frequency weights.

Every loss here maps ``(logits (B, K, H, W) float, labels (B, H, W) int64)`` to a scalar and lets no
pixel labelled ``ignore_index`` (void; also the padding of a batch of unequal images) count in any
term; a batch with no labelled pixel gives a finite 0 (with a gradient of zeros), never NaN.

* Region losses (MONAI's ``DiceLoss``, ``GeneralizedDiceLoss``, ``TverskyLoss``; :class:`FocalTversky`)
  go through :class:`VoidMasked`: the softmax probabilities and the one-hot target are set to 0 at
  void pixels before the loss sees them, so void adds nothing to any intersection or sum and the
  value is MONAI's loss on the labelled pixels alone. The MONAI loss is built with its defaults
  ``softmax=False, to_onehot_y=False`` (it receives probabilities and one-hot targets) and
  ``include_background=True`` (background is a class of the benchmark).
* Pixel terms: :class:`PixelCE` (PyTorch's cross-entropy with ``ignore_index``, optionally class-weighted)
  and :class:`PixelFocal` (MONAI ``FocalLoss``, softmax form, with its own ``ignore_index``: the mean
  over labelled pixels); :class:`Compound` sums weighted terms (Dice + CE, Dice + focal).
* :func:`lovasz_softmax`: hand-written (neither MONAI nor torchvision has it), after Berman et al.'s
  reference ``lovasz_softmax_flat`` with ``classes='present'``, over the labelled pixels of the batch.
* :func:`median_frequency_weights`: hand-written (Eigen & Fergus 2015).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import FocalLoss, TverskyLoss
from torch import nn


def _zero(logits: torch.Tensor) -> torch.Tensor:
    """A 0 that keeps the graph (its gradient is zeros)."""
    return logits.sum() * 0.0


def one_hot_maps(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Labels (B, ...) -> float one-hot (B, K, ...) along dim 1, zero vectors where a label is
    outside ``0..K-1`` (void, padding). Built with ``scatter_`` into a float tensor, never the int64
    (..., K) tensor ``F.one_hot`` makes (10 GB for a batch of 32 full-size Cityscapes maps)."""
    valid = (labels >= 0) & (labels < num_classes)
    out = torch.zeros(labels.shape[0], num_classes, *labels.shape[1:], dtype=dtype, device=labels.device)
    return out.scatter_(1, torch.where(valid, labels, 0).unsqueeze(1), valid.unsqueeze(1).to(dtype))


def masked_inputs(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probabilities, one-hot target)``, both (B, K, H, W) float, each 0 at void pixels."""
    valid = (labels != ignore_index).unsqueeze(1)
    K = logits.shape[1]
    probs = torch.where(valid, torch.softmax(logits.float(), 1), 0.0)
    return probs, one_hot_maps(torch.where(valid[:, 0], labels, -1), K, probs.dtype)


class VoidMasked(nn.Module):
    """A region loss ``region(probabilities, one-hot target)`` (a MONAI loss built with
    ``softmax=False, to_onehot_y=False``) applied to ``(logits, labels)`` with void zeroed in both.
    Images with no labelled pixel are left out: per image (``batch=False``) each would add a 0
    term and dilute the mean; over the batch they add nothing either way."""

    def __init__(self, region: nn.Module, ignore_index: int):
        super().__init__()
        self.region, self.ignore_index = region, int(ignore_index)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labelled = (labels != self.ignore_index).flatten(1).any(1)
        if not labelled.any():
            return _zero(logits)
        if not labelled.all():
            logits, labels = logits[labelled], labels[labelled]
        return self.region(*masked_inputs(logits, labels, self.ignore_index))


class FocalTversky(nn.Module):
    """Abraham & Khan (2019): the mean over classes of ``(1 − TI_c)^(1/γ)``, TI_c MONAI's Tversky index.

    ``alpha`` weighs false positives and ``beta`` false negatives (MONAI's and Salehi et al.'s
    convention; Abraham & Khan name the false-negative weight α: their α = 0.7, β = 0.3 is
    ``alpha=0.3, beta=0.7`` here). The paper sums over classes; the mean keeps the loss in [0, 1]
    like the other region losses (a factor K, i.e. a learning-rate scale). ``1 − TI`` is clamped at
    1e-12 so that the gradient of ``x^(1/γ)`` (1/γ < 1) stays finite at a perfect class.
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4.0 / 3.0, batch: bool = True):
        super().__init__()
        self.tversky = TverskyLoss(alpha=alpha, beta=beta, batch=batch, reduction="none")
        self.gamma = float(gamma)

    def forward(self, probs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        per_class = self.tversky(probs, onehot)  # 1 − TI_c: (K,) with batch=True, (B, K) without
        return per_class.clamp_min(1e-12).pow(1.0 / self.gamma).mean()


class PixelCE(nn.Module):
    """``F.cross_entropy(logits, labels, weight, ignore_index)``: PyTorch's (weighted) mean over the
    labelled pixels, Σ w_{y_i} CE_i / Σ w_{y_i}; 0 when no labelled pixel has a positive weight."""

    def __init__(self, ignore_index: int, weight: torch.Tensor | None = None):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != self.ignore_index
        counted = valid.any() if self.weight is None else (self.weight[labels[valid]] > 0).any()
        if not counted:
            return _zero(logits)
        return F.cross_entropy(logits, labels, weight=self.weight, ignore_index=self.ignore_index)


class PixelFocal(nn.Module):
    """MONAI ``FocalLoss`` in its softmax form: −α_t (1 − p_t)^γ log p_t averaged over the labelled
    pixels (MONAI's ``ignore_index`` path divides by their number). ``alpha_t`` is per class (K,) or
    None (α_t = 1). MONAI does not clamp ``1 − p_t``: with 0 < γ < 1 a saturated pixel has an
    unbounded gradient."""

    def __init__(self, ignore_index: int, gamma: float = 2.0, alpha_t: Sequence[float] | None = None):
        super().__init__()
        alpha = None if alpha_t is None else [float(a) for a in alpha_t]
        self.focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=float(gamma), alpha=alpha,
                               ignore_index=int(ignore_index))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.focal(logits, labels.unsqueeze(1))


class Compound(nn.Module):
    """Σ λ_i · term_i(logits, labels) (e.g. Dice + CE)."""

    def __init__(self, terms: Iterable[tuple[float, nn.Module]]):
        super().__init__()
        terms = list(terms)
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList(t for _, t in terms)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = _zero(logits)
        for w, term in zip(self.weights, self.terms):
            if w:
                total = total + w * term(logits, labels)
        return total


# ------------------------------------------------------------------ Lovász-softmax


def lovasz_gradient(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Per column (a class), the Lovász extension's weights for errors sorted in decreasing order:
    g_i = J(first i) − J(first i − 1), J the Jaccard loss of the pixels taken as mispredicted.
    ``fg_sorted`` (P, K) float: 1 where the pixel belongs to the class, in that order."""
    n_fg = fg_sorted.sum(0, keepdim=True)
    intersection = n_fg - fg_sorted.cumsum(0)
    union = n_fg + (1.0 - fg_sorted).cumsum(0)  # >= 1 from the first row on
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)


def lovasz_softmax(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Lovász-softmax (Berman, Rannen Triki & Blaschko, CVPR 2018) over the labelled pixels of the batch.

    For each class c present in the batch's labels: the errors m_i = |[y_i = c] − p_i(c)| sorted in
    decreasing order, dotted with :func:`lovasz_gradient`: the Lovász extension of the Jaccard loss
    of class c; the loss is their mean over the present classes (the reference's
    ``classes='present'``, ``per_image=False``). All classes at once (one sort per column).
    """
    K = logits.shape[1]
    valid = labels != ignore_index
    if not valid.any():
        return _zero(logits)
    probs = torch.softmax(logits.float(), 1).movedim(1, -1)[valid]  # (P, K)
    fg = one_hot_maps(labels[valid], K, probs.dtype)  # (P, K)
    errors = (fg - probs).abs()
    errors_sorted, order = errors.sort(0, descending=True)
    per_class = (errors_sorted * lovasz_gradient(fg.gather(0, order))).sum(0)
    present = fg.sum(0) > 0
    return per_class[present].mean()


class LovaszSoftmax(nn.Module):
    """:func:`lovasz_softmax` as a ``(logits, labels) -> scalar`` module."""

    def __init__(self, ignore_index: int):
        super().__init__()
        self.ignore_index = int(ignore_index)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return lovasz_softmax(logits, labels, self.ignore_index)


# ------------------------------------------------------------------ median-frequency weights


def median_frequency_weights(masks: Iterable[torch.Tensor], num_classes: int, ignore_index: int) -> torch.Tensor:
    """Eigen & Fergus (2015): w_c = median_freq / freq_c, (K,) float32.

    freq_c = pixels of class c / labelled pixels of the images that hold c (void counts in neither);
    median_freq is the median (NumPy's: the mean of the middle two for an even count) of freq_c over
    the classes present in the set. A class with no pixel gets weight 0. The weights are not
    normalised: a class at the median frequency has weight 1.
    """
    class_pixels = np.zeros(num_classes, dtype=np.float64)
    image_pixels = np.zeros(num_classes, dtype=np.float64)
    for m in masks:
        labelled = m[m != ignore_index]
        counts = torch.bincount(labelled.reshape(-1), minlength=num_classes)[:num_classes].numpy()
        class_pixels += counts
        image_pixels[counts > 0] += labelled.numel()
    present = class_pixels > 0
    if not present.any():
        raise ValueError("the set has no labelled pixel")
    freq = np.divide(class_pixels, image_pixels, out=np.zeros(num_classes), where=present)
    weights = np.divide(np.median(freq[present]), freq, out=np.zeros(num_classes), where=present)
    return torch.tensor(weights, dtype=torch.float32)
