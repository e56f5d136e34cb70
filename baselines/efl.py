"""Equalized focal loss (Li et al., CVPR 2022) for the dense detection heads, as the official
``EqualizedFocalLoss`` of ModelTC's EOD / United-Perception."""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..tasks.detection.models import DENSE_HEAD_MODELS
from .box_losses import one_hot_targets


class EFLLoss(nn.Module):
    """EFL for a sigmoid head's ``cls_loss`` slot (``(logits (M, K), classes) -> sum``):

        EFL = Σ α_t · (γ_j / γ_b) · (1 − p_t)^γ_j · BCE(z, y),   γ_j = γ_b + s · (1 − g_j),

    α_t = α on a positive, 1 − α on a negative (α < 0: none), g_j = clamp(P_j / (N_j + 1e-10),
    0, 1), P_j / N_j the accumulated magnitudes of the positive / negative gradients that reach
    class j's logits (g starts at 1, so the first step is torchvision's sigmoid focal loss). As
    the official code (a backward hook on the classification logits), the gradients collected are
    those of the loss the detector back-propagates -- this one after the head's normalisation and
    any later scaling -- read by a hook on ``logits`` when they flow back; a call without autograd
    (evaluation) collects nothing.
    """

    def __init__(self, num_classes: int, gamma: float = 2.0, alpha: float = 0.25, scale: float = 8.0):
        super().__init__()
        self.num_classes = int(num_classes)
        self.gamma, self.alpha, self.scale = float(gamma), float(alpha), float(scale)
        self.register_buffer("pos_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("pos_neg", torch.ones(self.num_classes, dtype=torch.float64))
        self.updates = 0

    def focusing(self) -> Tensor:
        """γ_j (K,) for the next call."""
        return self.gamma + self.scale * (1 - self.pos_neg)

    def forward(self, logits: Tensor, classes: Tensor) -> Tensor:
        if self.pos_grad.device != logits.device:
            for key in ("pos_grad", "neg_grad", "pos_neg"):
                setattr(self, key, getattr(self, key).to(logits.device))
        target = one_hot_targets(logits, classes)
        gamma = self.focusing().to(logits.dtype)
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        loss = loss * (1 - p_t).pow(gamma) * (gamma / self.gamma)
        if self.alpha >= 0:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        if logits.requires_grad:
            logits.register_hook(partial(self._collect, target.detach()))
        return loss.sum()

    @torch.no_grad()
    def _collect(self, target: Tensor, grad: Tensor) -> None:
        g, t = grad.abs().double(), target.double()
        self.pos_grad += (g * t).sum(0)
        self.neg_grad += (g * (1 - t)).sum(0)
        self.pos_neg = (self.pos_grad / (self.neg_grad + 1e-10)).clamp(0, 1)
        self.updates += 1


@register_method
class EFL(Method):
    """Equalized focal loss with ``gamma`` 2 (γ_b), ``alpha`` 0.25 and ``scale`` 8 (s), the paper's
    and the official configuration's values; gradient statistics start afresh in every cell.

    The long-tail loss imbench offers on the dense sigmoid heads (FCOS, RetinaNet; ``models``). Its
    authors built it because EQLv2's statistic, made for the ~512 sampled ROIs of a two-stage
    head, breaks on a dense head, where ~10^5 easy background locations per batch dominate the
    negative gradients -- imbench measured that collapse (``eqlv2``'s docstring); EFL keeps
    FCOS's focal loss and raises each rare class's focusing factor γ_j (and weight γ_j / γ_b)
    as its positive / negative gradient ratio falls.
    """

    name = "efl"
    family = "baseline"
    tracks = ("detection",)
    summary = "Equalized focal loss: sigmoid focal loss with a per-class focusing factor from pos/neg gradient ratios"
    reference = ("Li, Yao, Tan, Zhang, Yu, Lu & Luo, Equalized Focal Loss for Dense Long-Tailed Object "
                 "Detection, CVPR 2022")
    defaults = {"gamma": 2.0, "alpha": 0.25, "scale": 8.0}
    models = {"detection": DENSE_HEAD_MODELS}

    def check(self) -> None:
        for key in ("gamma", "alpha", "scale"):
            v = float(self.params[key])
            if not math.isfinite(v) or (key == "gamma" and v <= 0) or (key == "scale" and v < 0) or v > (
                    1 if key == "alpha" else math.inf):
                rule = {"gamma": "> 0", "alpha": "<= 1 (< 0: off)", "scale": ">= 0"}[key]
                raise UsageError(f"method 'efl': {key} must be a finite number {rule}, got {self.params[key]}")

    def criterion(self, ctx: Context):
        return EFLLoss(ctx.num_classes, float(self.params["gamma"]), float(self.params["alpha"]),
                       float(self.params["scale"]))
