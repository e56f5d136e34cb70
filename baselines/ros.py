"""Random over-sampling (ROS): duplicate real items until every class has the largest count."""
from __future__ import annotations

from imblearn.over_sampling import RandomOverSampler

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .resampling import resample_indices
from .scene_sampling import oversample_images


@register_method
class ROS(Method):
    """imbalanced-learn's ``RandomOverSampler`` on item indices (exact counts).

    Duplicates are real images, so they are *not* flagged synthetic; the originals come first
    in their order. The record gets ``counts_after_prepare``. Detection: images holding the
    rarer classes are duplicated until every class has about the largest instance count
    (:func:`~.scene_sampling.oversample_images`; objects of other classes come along).
    Segmentation: the same over pixel counts -- images holding the rarer classes are duplicated
    until each class has about the largest pixel count among the classes not present in every
    image (background is everywhere on digit-scenes, so the largest digit class sets the target).
    """

    name = "ros"
    family = "baseline"
    tracks = ("classification", "detection", "segmentation")
    summary = "Random over-sampling: duplicate items of every class up to the largest class count"
    reference = "Lemaître, Nogueira & Aridas, imbalanced-learn, JMLR 2017 (RandomOverSampler)"
    defaults = {}

    def prepare(self, train, ctx: Context):
        if ctx.track in ("detection", "segmentation"):
            return oversample_images(train, ctx)
        return resample_indices(train, ctx, RandomOverSampler, self.name)
