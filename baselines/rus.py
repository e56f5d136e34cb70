"""Random under-sampling (RUS): drop items until every class has the smallest count."""
from __future__ import annotations

from imblearn.under_sampling import RandomUnderSampler

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .resampling import resample_indices


@register_method
class RUS(Method):
    """imbalanced-learn's ``RandomUnderSampler`` on item indices (exact counts).

    The kept items stay in their original order. The record gets ``counts_after_prepare``.
    """

    name = "rus"
    family = "baseline"
    tracks = ("classification",)
    summary = "Random under-sampling: keep a random subset of every class of the smallest class count"
    reference = "Lemaître, Nogueira & Aridas, imbalanced-learn, JMLR 2017 (RandomUnderSampler)"
    defaults = {}

    def prepare(self, train, ctx: Context):
        return resample_indices(train, ctx, RandomUnderSampler, self.name)
