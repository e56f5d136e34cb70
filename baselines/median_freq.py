"""Median-frequency class balancing (segmentation): cross-entropy weighted by median_freq / freq_c."""
from __future__ import annotations

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from ..tasks.segmentation.losses import PixelCE, median_frequency_weights


@register_method
class MedianFreq(Method):
    """Pixel cross-entropy with w_c = median_freq / freq_c, freq_c = pixels of class c / labelled
    pixels of the images holding c (void counts in neither; a class with no pixel gets 0).

    The weights need per-image totals, which the context does not hold: ``prepare`` computes them
    from the training set it receives (the recipe's split; in a hybrid, the set the parts before
    produced) and returns the set unchanged; ``criterion`` uses them. PyTorch's weighted mean over
    the labelled pixels (Σ w_{y_i} CE_i / Σ w_{y_i}), void ignored. The weights go to the record
    (``class_weights``); they are not normalised (a class at the median frequency has weight 1).
    """

    name = "median-freq"
    family = "baseline"
    tracks = ("segmentation",)
    summary = "Cross-entropy weighted by median frequency / class frequency (frequency over images holding the class)"
    reference = ("Eigen & Fergus, Predicting depth, surface normals and semantic labels with a common "
                 "multi-scale convolutional architecture, ICCV 2015")
    defaults = {}

    def __init__(self, **params):
        super().__init__(**params)
        self.weights = None

    def prepare(self, train, ctx: Context):
        self.weights = median_frequency_weights(train.masks, train.num_classes, train.ignore_index)
        ctx.note("class_weights", [round(float(v), 6) for v in self.weights])
        return train

    def criterion(self, ctx: Context):
        if self.weights is None:
            raise RuntimeError("method 'median-freq': prepare(train, ctx) must run before criterion(ctx)")
        return PixelCE(ctx.ignore_index, self.weights)
