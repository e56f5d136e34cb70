"""Remix-DRW: rebalanced mixup (Chou, Chang, Pan, Wei & Juan, ECCV-W 2020) with deferred
class-balanced re-weighting, as imbalanced-DL's ``Remix_DRW`` strategy."""
from __future__ import annotations

import math

import torch

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from .mixing import MixingDRW, remix_label_weights


@register_method
class RemixDRW(MixingDRW):
    """Images mixed as mixup's (one λ ~ Beta(α, α) per batch); labels by Remix's rule
    (:func:`~imbench.baselines.mixing.remix_label_weights`) with ``kappa`` 3 and ``tau`` 0.5, the
    paper's values, from the training counts (``ctx.instance_counts``); DRW as ``mixup-drw``."""

    name = "remix-drw"
    summary = "Remix (label of a mixed pair biased to the minority class) with DRW"
    reference = ("Chou, Chang, Pan, Wei & Juan, Remix: Rebalanced Mixup, ECCV 2020 Workshops; DRW: Cao et al., "
                 "NeurIPS 2019; as imbalanced-DL's Remix_DRW")
    defaults = {**MixingDRW.defaults, "kappa": 3.0, "tau": 0.5}

    def check(self) -> None:
        super().check()
        k, t = float(self.params["kappa"]), float(self.params["tau"])
        if not (math.isfinite(k) and k >= 1):
            raise UsageError(f"method 'remix-drw': kappa must be >= 1, got {self.params['kappa']}")
        if not (math.isfinite(t) and 0 <= t <= 1):
            raise UsageError(f"method 'remix-drw': tau must be in [0, 1], got {self.params['tau']}")

    def label_weights(self, lam: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = self._counts.clamp_min(1)
        return remix_label_weights(lam, n[a.cpu()], n[b.cpu()], float(self.params["kappa"]), float(self.params["tau"]))
