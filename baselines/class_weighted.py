"""Class-weighted cross-entropy: each class weighted by its inverse frequency."""
from __future__ import annotations

from torch import nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from ..tasks.segmentation.losses import PixelCE
from .class_weights import inverse_frequency_weights


@register_method
class ClassWeighted(Method):
    """``nn.CrossEntropyLoss(weight=w)`` with w_c ∝ 1 / n_c summing to C (0 for an empty class).

    ``n_c`` are the recipe's counts (``ctx.instance_counts``). PyTorch's weighted mean is used:
    Σ w_{y_i} CE_i / Σ w_{y_i} over the batch. The weights go to the record (``class_weights``).

    Segmentation: ``n_c`` are pixel counts (void left out) and the mean runs over the labelled
    pixels (``F.cross_entropy`` with ``ignore_index``; 0 for a batch with none).
    """

    name = "class-weighted"
    family = "baseline"
    tracks = ("classification", "segmentation")
    summary = "Cross-entropy weighted by inverse class frequency (weights sum to the number of classes)"
    reference = "Inverse-frequency cost-sensitive learning, e.g. King & Zeng 2001; Huang et al., CVPR 2016"
    defaults = {}

    def criterion(self, ctx: Context):
        w = inverse_frequency_weights(ctx.instance_counts)
        ctx.note("class_weights", [round(float(v), 6) for v in w])
        if ctx.track == "segmentation":
            return PixelCE(ctx.ignore_index, w)
        return nn.CrossEntropyLoss(weight=w)
