"""Class-balanced loss: weights from the effective number of samples (Cui et al. 2019)."""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .box_losses import sigmoid_focal, softmax_focal
from .class_weights import class_balanced_weights

LOSSES = ("softmax", "focal", "sigmoid")


class ClassBalancedLoss(nn.Module):
    """The loss of richardaecn/class-balanced-loss (``src/cifar_main.py``), in PyTorch.

    Each item is weighted by w_{y}; every variant is normalised like the reference, by the
    number of positive labels (= batch size): softmax Σ w_y CE / B (TF's
    ``softmax_cross_entropy`` reduction), sigmoid Σ w_y BCE(one-hot) / B, focal the same with
    the modulator exp(−γ·t·z − γ·log(1 + exp(−z))) = (1 − p_t)^γ.
    """

    def __init__(self, weights: torch.Tensor, loss: str = "softmax", gamma: float = 1.0):
        super().__init__()
        self.register_buffer("weights", weights.float())
        self.loss, self.gamma = loss, float(gamma)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        w = self.weights.to(logits.dtype)[targets]
        if self.loss == "softmax":
            return (w * F.cross_entropy(logits, targets, reduction="none")).sum() / len(targets)
        onehot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        if self.loss == "focal" and self.gamma != 0.0:
            bce = torch.exp(-self.gamma * onehot * logits - self.gamma * F.softplus(-logits)) * bce
        return (w[:, None] * bce).sum() / onehot.sum()


@register_method
class CBLoss(Method):
    """Class-balanced loss with w_c = (1 − β) / (1 − β^{n_c}) normalised to sum to C.

    For the sigmoid and focal variants the classifier bias starts at −log(C − 1) (prior 1/C),
    as the reference's ``_fully_connected`` does, so the first sigmoid losses are not huge.

    Detection: the weights come from the per-class *instance* counts and scale the detector's
    own box-classification loss item by item (foreground items by their class's weight,
    background 1): sigmoid focal (alpha 0.25, gamma 2) on FCOS / RetinaNet, softmax CE on
    Faster R-CNN; ``loss`` and ``gamma`` are classification parameters and unused there.
    """

    name = "cb-loss"
    family = "baseline"
    tracks = ("classification", "detection")
    summary = "Class-balanced loss: reweight by the inverse effective number of samples (softmax/sigmoid/focal)"
    reference = "Cui, Jia, Lin, Song & Belongie, Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019"
    defaults = {"beta": 0.9999, "loss": "softmax", "gamma": 1.0}

    def check(self) -> None:
        p = self.params
        if not 0.0 <= float(p["beta"]) < 1.0:
            raise UsageError(f"method 'cb-loss': beta must be in [0, 1), got {p['beta']}")
        if p["loss"] not in LOSSES:
            raise UsageError(f"method 'cb-loss': loss must be one of {', '.join(LOSSES)}, got {p['loss']!r}")
        if float(p["gamma"]) < 0:
            raise UsageError(f"method 'cb-loss': gamma must be >= 0, got {p['gamma']}")

    def adapt_model(self, model: nn.Module, ctx: Context) -> nn.Module:
        if ctx.track != "classification":
            return model
        bias = getattr(model.classifier, "bias", None)
        if self.params["loss"] != "softmax" and bias is not None and ctx.num_classes > 1:
            with torch.no_grad():
                bias.fill_(-math.log(max(ctx.num_classes - 1, 1)))
        return model

    def criterion(self, ctx: Context):
        w = class_balanced_weights(ctx.instance_counts, float(self.params["beta"]))
        ctx.note("class_weights", [round(float(v), 6) for v in w])
        if ctx.track == "detection":
            if ctx.model_info.get("head") == "sigmoid":
                return partial(sigmoid_focal, alpha=0.25, gamma=2.0, weights=w)
            return partial(softmax_focal, gamma=0.0, weights=w)
        return ClassBalancedLoss(w, self.params["loss"], float(self.params["gamma"]))
