"""Lovász-softmax: a convex surrogate of the per-class Jaccard (IoU) loss (segmentation)."""
from __future__ import annotations

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from ..tasks.segmentation.losses import LovaszSoftmax


@register_method
class Lovasz(Method):
    """The Lovász extension of each class's Jaccard loss on the softmax errors, averaged over the
    classes present in the batch's labels, over the labelled pixels of the whole batch (the
    reference's ``classes='present'``, ``per_image=False``). Hand-written (MONAI has no Lovász loss);
    see :func:`~..tasks.segmentation.losses.lovasz_softmax`. Used alone, as in the paper's
    fine-tuning experiments; it directly targets the track's headline metric (mIoU)."""

    name = "lovasz"
    family = "baseline"
    tracks = ("segmentation",)
    summary = "Lovasz-softmax loss: a tractable surrogate of the per-class IoU (classes present in the batch)"
    reference = ("Berman, Rannen Triki & Blaschko, The Lovasz-Softmax loss: a tractable surrogate for the "
                 "optimization of the intersection-over-union measure in neural networks, CVPR 2018")
    defaults = {}

    def criterion(self, ctx: Context):
        return LovaszSoftmax(ctx.ignore_index)
