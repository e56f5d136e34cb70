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
from ..tasks.detection.models import SOFTMAX_HEAD_MODELS
from .box_losses import softmax_focal


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

    Detection: Faster R-CNN only (``models``): the softmax form above over background + K classes
    (background α_t 1) in place of its softmax CE. Not offered on the dense sigmoid heads (FCOS,
    RetinaNet): their own loss -- ``erm`` there -- already is Lin et al.'s sigmoid focal loss
    (γ 2, α 0.25), so a ``focal`` row would only be erm with other constants (with α off, as the
    default here, it measured erm without the α-balancing the paper prescribes for dense heads).

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
    models = {"detection": SOFTMAX_HEAD_MODELS}

    def check(self) -> None:
        if float(self.params["gamma"]) < 0:
            raise UsageError(f"method 'focal': gamma must be >= 0, got {self.params['gamma']}")
        if float(self.params["alpha"]) > 1:
            raise UsageError(f"method 'focal': alpha must be in [0, 1] (or < 0 for off), got {self.params['alpha']}")

    def criterion(self, ctx: Context):
        alpha, gamma = float(self.params["alpha"]), float(self.params["gamma"])
        alpha_t = None
        if alpha >= 0:
            alpha_t = torch.full((ctx.num_classes,), 1.0 - alpha)
            alpha_t[list(ctx.minority)] = alpha
        if ctx.track == "detection":
            return partial(softmax_focal, gamma=gamma, alpha_t=alpha_t)
        if ctx.track == "segmentation":
            return PixelFocal(ctx.ignore_index, gamma, None if alpha_t is None else alpha_t.tolist())
        return FocalLoss(gamma, alpha_t)
