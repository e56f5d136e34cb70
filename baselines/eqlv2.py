"""Equalization loss v2 (Tan et al., CVPR 2021), the official ``tztztztztz/eqlv2`` loss, for the
detection track."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..tasks.detection.models import SOFTMAX_HEAD_MODELS
from .box_losses import one_hot_targets

HEADS = ("sigmoid", "softmax")


class EQLv2Loss(nn.Module):
    """EQLv2 for the detector's ``cls_loss`` slot (``(logits, classes) -> sum``), as the official
    ``EQLv2`` module: Σ w · BCE(logits, one-hot), w = pos_w_j on a positive of class j, neg_w_j on
    a negative, with neg_w = f(g), f(x) = 1 / (1 + exp(−γ(x − μ))), pos_w = 1 + α(1 − neg_w) and
    g_j = P_j / (N_j + 1e-10), P_j / N_j the accumulated positive / negative gradient magnitudes of
    class j. The first call uses weights 1; each call's weights come from the calls before it,
    and afterwards it adds its own *weighted* gradient magnitudes w · |σ(z) − y| (detached), as the
    official ``collect_grad`` does.

    ``head="sigmoid"`` (FCOS, RetinaNet): the (M, K) logits, background rows all-negative.
    ``head="softmax"`` (Faster R-CNN, (M, K+1), column 0 background): all K+1 columns are sigmoid
    logits and a background item's target is its background column, as the official loss on its
    num_classes + 1 outputs; the background column's weights are always 1 and its gradients are
    not collected.
    """

    def __init__(self, num_classes: int, head: str, gamma: float = 12.0, mu: float = 0.8, alpha: float = 4.0):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"eqlv2: head must be one of {', '.join(HEADS)}, got {head!r}")
        self.num_classes, self.head = int(num_classes), head
        self.gamma, self.mu, self.alpha = float(gamma), float(mu), float(alpha)
        self.register_buffer("pos_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.calls = 0

    def class_weights(self) -> tuple[Tensor, Tensor]:
        """(pos_w, neg_w), each (K,), for the next call."""
        if self.calls == 0:
            ones = torch.ones_like(self.pos_grad)
            return ones, ones
        g = self.pos_grad / (self.neg_grad + 1e-10)
        neg_w = torch.sigmoid(self.gamma * (g - self.mu))
        return 1 + self.alpha * (1 - neg_w), neg_w

    def forward(self, logits: Tensor, classes: Tensor) -> Tensor:
        if self.pos_grad.device != logits.device:
            for key in ("pos_grad", "neg_grad"):
                setattr(self, key, getattr(self, key).to(logits.device))
        pos_w, neg_w = self.class_weights()
        if self.head == "softmax":
            one = pos_w.new_ones(1)
            pos_w, neg_w = torch.cat([one, pos_w]), torch.cat([one, neg_w])
            target = F.one_hot((classes + 1).clamp(min=0), logits.shape[1]).to(logits.dtype)
        else:
            target = one_hot_targets(logits, classes)
        weight = (target * pos_w.to(logits.dtype) + (1 - target) * neg_w.to(logits.dtype)).detach()
        loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum()
        with torch.no_grad():
            grad = (torch.sigmoid(logits) - target).abs() * weight
            cols = slice(1, None) if self.head == "softmax" else slice(None)
            self.pos_grad += (grad * target).sum(0)[cols].double()
            self.neg_grad += (grad * (1 - target)).sum(0)[cols].double()
            self.calls += 1
        return loss


def eqlv2_scores(logits: Tensor) -> Tensor:
    """The official EQLv2 scores of (N, K+1) ROI logits, column 0 background: σ(z_j)·(1 − σ(z_bg))
    for the object columns (the background column keeps σ(z_bg); it is dropped before NMS)."""
    p = torch.sigmoid(logits)
    return torch.cat([p[:, :1], p[:, 1:] * (1 - p[:, :1])], dim=1)


@register_method
class EQLv2(Method):
    """Equalization loss v2 with ``gamma`` 12, ``mu`` 0.8, ``alpha`` 4 (the paper's and the
    official repository's values); gradient statistics start from zero in a module built afresh
    for every cell.

    On torchvision's Faster R-CNN the K+1 logits are trained as sigmoid logits as the official
    loss does, and detections are scored as the official code scores them, σ(z_j)·(1 − σ(z_bg))
    (``adapt_model`` sets the detector's ``roi_scores``; version 1 kept torchvision's softmax,
    which ranks an ROI's classes alike but ranks ROIs against each other differently, and AP
    ranks detections across ROIs).

    Two-stage models only (``models``), as the paper and the official code (a sampled ROI head of
    a few hundred ROIs a batch). On the dense heads imbench offered an adaptation up to version 2:
    this weighted BCE over every FCOS location. It collapsed on a long-tailed set of small objects
    (10 classes, 291 -> 2 instances, 256 px, quick, seed 0: AP 0.131 against erm's 0.339): the first
    step's ~86,000 x 10 easy background negatives (weights 1) made every class's gradient ratio g
    ~0, so neg_w stayed ~0 -- no background gradient -- for half of training (background scores
    reached 1.0), and for the rarest five classes to the end. Li et al. (2022, with EQLv2's
    authors) name this failure and give the dense-head form, ``efl``. ``EQLv2Loss`` still takes a
    ``"sigmoid"`` head, for a plugin that wants the adaptation.
    """

    name = "eqlv2"
    family = "baseline"
    tracks = ("detection",)
    summary = "Equalization loss v2: sigmoid loss re-weighted per class by accumulated pos/neg gradient ratios"
    reference = ("Tan, Lu, Zhang, Liu, Yan & Li, Equalization Loss v2: A New Gradient Balance Approach "
                 "for Long-tailed Object Detection, CVPR 2021")
    defaults = {"gamma": 12.0, "mu": 0.8, "alpha": 4.0}
    version = 2  # 2: Faster R-CNN detections scored sigma(z_j)(1 - sigma(z_bg)) (1: softmax)
    models = {"detection": SOFTMAX_HEAD_MODELS}

    def check(self) -> None:
        for key in ("gamma", "mu", "alpha"):
            v = float(self.params[key])
            if not math.isfinite(v) or (key != "mu" and v < 0):
                raise UsageError(f"method 'eqlv2': {key} must be a finite number{' >= 0' if key != 'mu' else ''}, "
                                 f"got {self.params[key]}")

    def adapt_model(self, model, ctx: Context):
        if ctx.model_info.get("head") == "softmax" and hasattr(model, "roi_scores"):
            model.roi_scores = eqlv2_scores
        return model

    def criterion(self, ctx: Context):
        return EQLv2Loss(ctx.num_classes, ctx.model_info.get("head"), float(self.params["gamma"]),
                         float(self.params["mu"]), float(self.params["alpha"]))
