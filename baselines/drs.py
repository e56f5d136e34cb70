"""Deferred re-sampling, DRS (Cao et al., NeurIPS 2019, the re-sampling twin of DRW)."""
from __future__ import annotations

import math

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import DeferredSampling, register_method
from ..tasks.schedule import epoch_at
from .cb_sampling import check_q, class_sampling_weights


@register_method
class DRS(Method):
    """Instance-balanced batches (erm's) for the first ⌊``drs_start`` · epochs⌋ epochs, then
    class-balanced sampling (``q`` 0; see ``cb-sampling``) to the end, with plain CE throughout:
    the sampling twin of LDAM-DRW's deferred re-weighting, at the same point (0.8: epoch 160 of
    200 in Cao et al.'s CIFAR schedule). The epochs are the budget's (``on_epoch``'s)."""

    name = "drs"
    family = "baseline"
    tracks = ("classification",)
    summary = "Deferred re-sampling: instance sampling, then class-balanced sampling for the last part of training"
    reference = ("Cao, Wei, Gaidon, Arechiga & Ma, Learning Imbalanced Datasets with Label-Distribution-Aware "
                 "Margin Loss, NeurIPS 2019 (DRS)")
    defaults = {"drs_start": 0.8, "q": 0.0}

    def check(self) -> None:
        s = float(self.params["drs_start"])
        if not math.isfinite(s) or not 0.0 <= s <= 1.0:
            raise UsageError(f"method 'drs': drs_start must be a fraction in [0, 1], got {self.params['drs_start']}")
        check_q(self.name, self.params["q"])

    def start_epoch(self, epochs: int) -> int:
        """The first epoch (0-based) of class-balanced sampling."""
        return epoch_at(self.params["drs_start"], epochs)

    def sampler(self, train, ctx: Context):
        start = self.start_epoch(ctx.epochs)
        ctx.note("drs_start_epoch", start)
        return DeferredSampling(None, class_sampling_weights(train.labels, ctx.num_classes, float(self.params["q"])),
                                start)
