"""Balanced softmax (Ren et al., NeurIPS 2020), as ``BalancedSoftmaxLoss`` of the authors'
``jiawei-ren/BalancedMetaSoftmax-Classification``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method


def log_counts(counts) -> torch.Tensor:
    """log n_c (C,), float32; an empty class counts as 1 (log 0 would rule it out for good)."""
    return torch.tensor(np.log(np.maximum(np.asarray(counts, dtype=np.float64), 1.0)), dtype=torch.float32)


class LogitShiftCE(nn.Module):
    """CE(z + shift, y), batch mean: ``shift`` (C,) is added to every item's logits in training."""

    def __init__(self, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.float())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits + self.shift.to(logits.dtype), targets)


@register_method
class BalancedSoftmax(Method):
    """Trains with CE(z + log n_c, y): the softmax of the shifted logits models the long-tailed
    training posterior, so the raw logits z -- what evaluation takes the arg-max of -- model the
    balanced one. n_c are the counts of the set the model trains on (``ctx.instance_counts``; in a
    hybrid after a data-level part, that part's output counts). Equal to ``logit-adjustment`` with
    τ = 1 (log π_c = log n_c − log N: a shift common to every class, which softmax ignores).
    ``balanced-softmax+cb-sampling`` corrects twice (BagofTricks-LT): it runs, as every loss +
    sampler hybrid does, and is expected to over-correct towards the tail."""

    name = "balanced-softmax"
    family = "baseline"
    tracks = ("classification",)
    summary = "Balanced softmax: cross-entropy on logits + log n_c (training only)"
    reference = ("Ren, Yu, Ma, Zhao, Yi & Li, Balanced Meta-Softmax for Long-Tailed Visual Recognition, "
                 "NeurIPS 2020")

    def criterion(self, ctx: Context):
        return LogitShiftCE(log_counts(ctx.instance_counts))
