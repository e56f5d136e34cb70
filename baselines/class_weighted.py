"""Class-weighted cross-entropy: each class weighted by its inverse frequency."""
from __future__ import annotations

from torch import nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .class_weights import inverse_frequency_weights


@register_method
class ClassWeighted(Method):
    """``nn.CrossEntropyLoss(weight=w)`` with w_c ∝ 1 / n_c summing to C (0 for an empty class).

    ``n_c`` are the recipe's counts (``ctx.instance_counts``). PyTorch's weighted mean is used:
    Σ w_{y_i} CE_i / Σ w_{y_i} over the batch. The weights go to the record (``class_weights``).
    """

    name = "class-weighted"
    family = "baseline"
    tracks = ("classification",)
    summary = "Cross-entropy weighted by inverse class frequency (weights sum to the number of classes)"
    reference = "Inverse-frequency cost-sensitive learning, e.g. King & Zeng 2001; Huang et al., CVPR 2016"
    defaults = {}

    def criterion(self, ctx: Context):
        w = inverse_frequency_weights(ctx.instance_counts)
        ctx.note("class_weights", [round(float(v), 6) for v in w])
        return nn.CrossEntropyLoss(weight=w)
