"""Mixup-DRW: mixup (Zhang et al., ICLR 2018) with deferred class-balanced re-weighting, as
imbalanced-DL's ``Mixup_DRW`` strategy (Chou et al.'s Remix paper, ECCV-W 2020, reports it)."""
from __future__ import annotations

from ..benchmarks.contract.method import register_method
from .mixing import MixingDRW


@register_method
class MixupDRW(MixingDRW):
    """Mixup with label weight λ for every item (α 1, imbalanced-DL's default), DRW at 0.8 with
    β 0.9999 (see :class:`~imbench.baselines.mixing.MixingDRW`)."""

    name = "mixup-drw"
    summary = "Mixup with deferred class-balanced re-weighting (DRW)"
    reference = ("Zhang, Cisse, Dauphin & Lopez-Paz, mixup: Beyond Empirical Risk Minimization, ICLR 2018; "
                 "DRW: Cao et al., NeurIPS 2019; as imbalanced-DL's Mixup_DRW")
