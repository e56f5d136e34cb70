"""Seesaw loss (Wang et al., CVPR 2021), mmdetection's ``SeesawLoss``, for the detection track."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..tasks.detection.models import SOFTMAX_HEAD_MODELS

class SeesawLoss(nn.Module):
    """Seesaw loss for a softmax detector head's ``cls_loss`` slot (``(logits, classes) -> sum``;
    logits (M, K+1), column 0 background, classes -1 background or 0..K-1).

    For a foreground item of class i the penalty its logits put on another class j is scaled by
    S_ij = M_ij · C_ij: the mitigation factor M_ij = (N_j / N_i)^p when N_j < N_i (else 1), N the
    per-class counts of foreground items this module has seen so far, *this call's included*
    (mmdetection adds a batch's labels to ``cum_samples`` before computing its loss; counts clamped
    at 1), and the compensation factor C_ij = (σ_j / max(σ_i, eps))^q when that ratio exceeds 1
    (else 1), σ the detached softmax over the K object columns (mmdetection's class branch).
    S_ii = 1. The factors enter the logits, as mmdetection's ``seesaw_ce_loss`` does
    (z_j + log S_ij for j ≠ i): for a foreground item, CE over K+1 columns
    −log(e^{z_i} / (e^{z_bg} + e^{z_i} + Σ_{j≠i} S_ij e^{z_j})), so every gradient is a softmax
    difference, in [−1, 1]. The background column is never weighted and a background item's loss
    is plain CE. With p = q = 0 it is the plain CE sum.

    Sigmoid heads are refused, as mmdetection refuses ``use_sigmoid``: the paper defines seesaw on
    a softmax classifier, and the earlier sigmoid adaptation here (the negative BCE term scaled by
    S_ij) let C_ij reach 10^4, a gradient of 1240 on a confused logit where BCE gives 0.5.
    """

    def __init__(self, num_classes: int, head: str = "softmax", p: float = 0.8, q: float = 2.0, eps: float = 1e-2):
        super().__init__()
        if head != "softmax":
            raise ValueError(f"seesaw needs a softmax head (Faster R-CNN), got a {head!r} head")
        self.num_classes, self.head = int(num_classes), head
        self.p, self.q, self.eps = float(p), float(q), float(eps)
        self.register_buffer("cum_samples", torch.zeros(self.num_classes, dtype=torch.float64))

    def factors(self, object_logits: Tensor, labels: Tensor) -> Tensor:
        """S (F, K) for foreground items with ``labels`` (F,) and their K object logits."""
        n = self.cum_samples.clamp(min=1)
        ratio = n[None, :] / n[:, None]  # [i, j] = N_j / N_i
        mitigation = torch.where(ratio < 1, ratio.pow(self.p), torch.ones_like(ratio))[labels]
        scores = F.softmax(object_logits.detach().double(), dim=1)
        rel = scores / scores.gather(1, labels[:, None]).clamp(min=self.eps)
        compensation = torch.where(rel > 1, rel.pow(self.q), torch.ones_like(rel))
        return (mitigation * compensation).to(object_logits.dtype)

    def forward(self, logits: Tensor, classes: Tensor) -> Tensor:
        if self.cum_samples.device != logits.device:
            self.cum_samples = self.cum_samples.to(logits.device)
        fg = classes >= 0
        labels = classes[fg]
        self.cum_samples += torch.bincount(labels, minlength=self.num_classes).to(self.cum_samples.dtype)
        s = self.factors(logits[fg, 1:], labels)
        offset = torch.zeros_like(logits)
        offset[fg, 1:] = s.log()
        return F.cross_entropy(logits + offset, (classes + 1).clamp(min=0), reduction="sum")


@register_method
class Seesaw(Method):
    """Seesaw loss with mitigation exponent ``p`` (0.8) and compensation exponent ``q`` (2.0), eps
    1e-2 (mmdetection's defaults), counts accumulated online from zeros in a module built afresh
    for every cell.

    Faster R-CNN only (``models``): seesaw is a softmax loss (see :class:`SeesawLoss`). Adaptation:
    torchvision's Faster R-CNN has one (K+1)-way softmax, not mmdetection's K-way class softmax
    plus a 2-way objectness branch, so the seesaw factors act among the K object columns and the
    background column and background items are plain CE. mmdetection's normalised linear
    classifier and its temperature are not used (the detector's own head).
    """

    name = "seesaw"
    family = "baseline"
    tracks = ("detection",)
    summary = "Seesaw loss: damp penalties on rarer classes, restore them on confused ones (online counts)"
    reference = ("Wang, Zhang, Zang, Cao, Pang, Gong, Liu, Loy & Lin, Seesaw Loss for Long-Tailed "
                 "Instance Segmentation, CVPR 2021")
    defaults = {"p": 0.8, "q": 2.0}
    models = {"detection": SOFTMAX_HEAD_MODELS}

    def check(self) -> None:
        for key in ("p", "q"):
            v = float(self.params[key])
            if not (math.isfinite(v) and v >= 0):
                raise UsageError(f"method 'seesaw': {key} must be a finite number >= 0, got {self.params[key]}")

    def criterion(self, ctx: Context):
        return SeesawLoss(ctx.num_classes, ctx.model_info.get("head"), float(self.params["p"]),
                          float(self.params["q"]))
