"""Seesaw loss (Wang et al., CVPR 2021), mmdetection's ``SeesawLoss``, for the detection track."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from .box_losses import one_hot_targets

HEADS = ("sigmoid", "softmax")


class SeesawLoss(nn.Module):
    """Seesaw loss for the detector's ``cls_loss`` slot (``(logits, classes) -> sum``).

    For a foreground item of class i the penalty its logits put on another class j is scaled by
    S_ij = M_ij · C_ij: the mitigation factor M_ij = (N_j / N_i)^p when N_j < N_i (else 1), N the
    per-class counts of foreground items this module has seen so far, *this call's included*
    (mmdetection adds a batch's labels to ``cum_samples`` before computing its loss; counts clamped
    at 1), and the compensation factor C_ij = (σ_j / max(σ_i, eps))^q when that ratio exceeds 1
    (else 1), σ the detached scores. S_ii = 1.

    ``head="softmax"`` (Faster R-CNN, logits (M, K+1), column 0 background): for a foreground
    item, CE over K+1 columns with the object columns j ≠ i shifted by log S_ij, i.e.
    −log(e^{z_i} / (e^{z_bg} + e^{z_i} + Σ_{j≠i} S_ij e^{z_j})); σ is the softmax over the K
    object columns (mmdetection's class branch); the background column is never weighted and a
    background item's loss is plain CE. ``head="sigmoid"`` (FCOS, RetinaNet, logits (M, K)):
    BCE with the negative term of class j in a class-i item's row scaled by S_ij, σ the sigmoid
    scores; background rows plain BCE. With p = q = 0 both are the plain CE / BCE sums.
    """

    def __init__(self, num_classes: int, head: str, p: float = 0.8, q: float = 2.0, eps: float = 1e-2):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"seesaw: head must be one of {', '.join(HEADS)}, got {head!r}")
        self.num_classes, self.head = int(num_classes), head
        self.p, self.q, self.eps = float(p), float(q), float(eps)
        self.register_buffer("cum_samples", torch.zeros(self.num_classes, dtype=torch.float64))

    def factors(self, object_logits: Tensor, labels: Tensor) -> Tensor:
        """S (F, K) for foreground items with ``labels`` (F,) and their K object logits."""
        n = self.cum_samples.clamp(min=1)
        ratio = n[None, :] / n[:, None]  # [i, j] = N_j / N_i
        mitigation = torch.where(ratio < 1, ratio.pow(self.p), torch.ones_like(ratio))[labels]
        z = object_logits.detach().double()
        scores = F.softmax(z, dim=1) if self.head == "softmax" else torch.sigmoid(z)
        rel = scores / scores.gather(1, labels[:, None]).clamp(min=self.eps)
        compensation = torch.where(rel > 1, rel.pow(self.q), torch.ones_like(rel))
        return (mitigation * compensation).to(object_logits.dtype)

    def forward(self, logits: Tensor, classes: Tensor) -> Tensor:
        if self.cum_samples.device != logits.device:
            self.cum_samples = self.cum_samples.to(logits.device)
        fg = classes >= 0
        labels = classes[fg]
        self.cum_samples += torch.bincount(labels, minlength=self.num_classes).to(self.cum_samples.dtype)
        if self.head == "softmax":
            s = self.factors(logits[fg, 1:], labels)
            offset = torch.zeros_like(logits)
            offset[fg, 1:] = s.log()
            return F.cross_entropy(logits + offset, (classes + 1).clamp(min=0), reduction="sum")
        weight = torch.ones_like(logits)
        weight[fg] = self.factors(logits[fg], labels)
        bce = F.binary_cross_entropy_with_logits(logits, one_hot_targets(logits, classes), reduction="none")
        return (bce * weight).sum()


@register_method
class Seesaw(Method):
    """Seesaw loss with mitigation exponent ``p`` (0.8) and compensation exponent ``q`` (2.0), eps
    1e-2 (mmdetection's defaults), counts accumulated online from zeros in a module built afresh
    for every cell.

    Adaptations: torchvision's Faster R-CNN has one (K+1)-way softmax, not mmdetection's K-way
    class softmax plus a 2-way objectness branch, so the seesaw factors act among the K object
    columns and the background column and background items are plain CE; on the sigmoid heads the
    factors scale the negative BCE terms of a foreground item (no focal term). mmdetection's
    normalised linear classifier and its temperature are not used (the detector's own head).
    """

    name = "seesaw"
    family = "baseline"
    tracks = ("detection",)
    summary = "Seesaw loss: damp penalties on rarer classes, restore them on confused ones (online counts)"
    reference = ("Wang, Zhang, Zang, Cao, Pang, Gong, Liu, Loy & Lin, Seesaw Loss for Long-Tailed "
                 "Instance Segmentation, CVPR 2021")
    defaults = {"p": 0.8, "q": 2.0}

    def check(self) -> None:
        for key in ("p", "q"):
            v = float(self.params[key])
            if not (math.isfinite(v) and v >= 0):
                raise UsageError(f"method 'seesaw': {key} must be a finite number >= 0, got {self.params[key]}")

    def criterion(self, ctx: Context):
        return SeesawLoss(ctx.num_classes, ctx.model_info.get("head"), float(self.params["p"]),
                          float(self.params["q"]))
