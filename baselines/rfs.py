"""Repeat-factor sampling (LVIS, Gupta et al. 2019): repeat images holding rare classes."""
from __future__ import annotations

from ..benchmarks.contract import Context, Method, RepeatFactors, UsageError
from ..benchmarks.contract.method import register_method
from .scene_sampling import lvis_threshold, repeat_factors


@register_method
class RFS(Method):
    """r(c) = max(1, sqrt(t / f(c))), f(c) the share of training images holding class c; an
    image repeats r(I) = max over its classes times per epoch, with stochastic rounding drawn
    anew every epoch. ``t`` = 0 (default) scales LVIS's threshold to the set
    (:func:`~.scene_sampling.lvis_threshold`: the image frequency where the frequent group
    starts; t = 0.001 on LVIS's 100k images is that boundary); a number in (0, 1] sets it.
    Under the equal-steps protocol the repeats change which images fill erm's steps, not how
    many steps there are. Notes ``rfs_threshold`` and the factors' range.
    """

    name = "rfs"
    family = "baseline"
    tracks = ("detection",)
    summary = "Repeat-factor sampling: repeat images with rare classes sqrt(t / f(c)) times per epoch"
    reference = "Gupta, Dollár & Girshick, LVIS: A Dataset for Large Vocabulary Instance Segmentation, CVPR 2019"
    defaults = {"t": 0.0}

    def check(self) -> None:
        if not 0.0 <= float(self.params["t"]) <= 1.0:
            raise UsageError(f"method 'rfs': t must be in [0, 1] (0 = scaled to the set), got {self.params['t']}")

    def sampler(self, train, ctx: Context):
        t = float(self.params["t"]) or lvis_threshold(train)
        factors = repeat_factors(train, t)
        ctx.note("rfs_threshold", t)
        ctx.note("rfs_factors", {"min": float(factors.min()), "max": float(factors.max()),
                                 "mean": float(factors.mean())})
        return RepeatFactors(factors)
