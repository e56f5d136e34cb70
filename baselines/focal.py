"""Focal loss, multi-class softmax form (Lin et al. 2017)."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from ..tasks.segmentation.losses import PixelFocal
from .box_losses import sigmoid_focal, softmax_focal


class FocalLoss(nn.Module):
    """FL = −α_t (1 − p_t)^γ log p_t, p_t the softmax probability of the true class; batch mean.

    ``alpha_t`` is a per-class tensor (K,) or None (α_t = 1). With γ = 0 and no α it is CE.
    (1 − p_t) is clamped at 1e-12 so that γ < 1 has a finite gradient at p_t = 1.
    """

    def __init__(self, gamma: float = 2.0, alpha_t: torch.Tensor | None = None):
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("alpha_t", None if alpha_t is None else alpha_t.float())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logp_t = F.log_softmax(logits, dim=1).gather(1, targets[:, None])[:, 0]
        loss = -logp_t
        if self.gamma != 0.0:
            loss = (-torch.expm1(logp_t)).clamp_min(1e-12).pow(self.gamma) * loss
        if self.alpha_t is not None:
            loss = self.alpha_t.to(loss.dtype)[targets] * loss
        return loss.mean()


@register_method
class Focal(Method):
    """Softmax focal loss with ``gamma`` (default 2.0, Lin et al.'s RetinaNet value; Cao et al.'s
    LDAM-DRW comparison used γ = 1 for its focal row: pass ``gamma=1`` to match it).

    ``alpha`` < 0 (default −1) switches α-balancing off. ``alpha`` in [0, 1] is Lin et al.'s
    α-balanced form with the recipe's minority classes (``ctx.minority``) as the rare
    "positive" class: α_t = alpha for a minority class, 1 − alpha for the others.

    Detection: on the sigmoid heads (FCOS, RetinaNet) torchvision's sigmoid focal loss with these
    ``gamma`` and ``alpha`` (alpha < 0: none) replaces the detector's own (which is gamma 2,
    alpha 0.25: ``focal:alpha=0.25`` reproduces ``erm`` exactly); on Faster R-CNN's softmax head,
    the softmax form above over background + K classes (background α_t 1).

    Segmentation: MONAI's ``FocalLoss`` (softmax form, the same ``gamma`` and per-class α_t) over
    the labelled pixels, void left out, averaged over them -- the classification loss above on
    the flattened labelled pixels, except that MONAI does not clamp (1 − p_t), so 0 < γ < 1 has an
    unbounded gradient at a saturated pixel.
    """

    name = "focal"
    family = "baseline"
    tracks = ("classification", "detection", "segmentation")
    summary = "Focal loss (softmax form): down-weight easy items by (1 - p_t)^gamma"
    reference = "Lin, Goyal, Girshick, He & Dollár, Focal Loss for Dense Object Detection, ICCV 2017"
    defaults = {"gamma": 2.0, "alpha": -1.0}

    def check(self) -> None:
        if float(self.params["gamma"]) < 0:
            raise UsageError(f"method 'focal': gamma must be >= 0, got {self.params['gamma']}")
        if float(self.params["alpha"]) > 1:
            raise UsageError(f"method 'focal': alpha must be in [0, 1] (or < 0 for off), got {self.params['alpha']}")

    def criterion(self, ctx: Context):
        alpha, gamma = float(self.params["alpha"]), float(self.params["gamma"])
        if ctx.track == "detection" and ctx.model_info.get("head") == "sigmoid":
            return partial(sigmoid_focal, alpha=alpha, gamma=gamma)
        alpha_t = None
        if alpha >= 0:
            alpha_t = torch.full((ctx.num_classes,), 1.0 - alpha)
            alpha_t[list(ctx.minority)] = alpha
        if ctx.track == "detection":
            return partial(softmax_focal, gamma=gamma, alpha_t=alpha_t)
        if ctx.track == "segmentation":
            return PixelFocal(ctx.ignore_index, gamma, None if alpha_t is None else alpha_t.tolist())
        return FocalLoss(gamma, alpha_t)
