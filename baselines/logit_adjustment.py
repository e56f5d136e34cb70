"""Logit adjustment (Menon et al., ICLR 2021), as google-research's ``logit_adjustment``: the
logit-adjusted loss, or post-hoc adjustment of a model trained with plain CE."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from .balanced_softmax import LogitShiftCE

MODES = ("loss", "posthoc")


def log_prior(counts) -> torch.Tensor:
    """log π_c (C,), π_c = n_c / N the training label frequencies; an empty class counts as 1."""
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return torch.tensor(np.log(n / n.sum()), dtype=torch.float32)


@register_method
class LogitAdjustment(Method):
    """``mode=loss`` (default): trains with CE(z + τ·log π_c, y) and evaluates the raw logits.
    ``mode=posthoc``: trains with plain CE (erm's training, bit for bit) and evaluates
    z − τ·log π_c, through the ``adjust_logits`` hook. ``tau`` 1 (the paper's loss default; its
    post-hoc τ is a tuning knob: choose it on a validation split, ``--validation``, never on test).
    π_c are the training-set frequencies (``ctx.instance_counts``). With τ = 1 the loss form equals
    ``balanced-softmax``.
    """

    name = "logit-adjustment"
    family = "baseline"
    tracks = ("classification",)
    summary = "Logit adjustment: CE on logits + tau log prior (loss), or logits - tau log prior at evaluation (posthoc)"
    reference = ("Menon, Jayasumana, Rawat, Jain, Veit & Kumar, Long-tail learning via logit adjustment, "
                 "ICLR 2021")
    defaults = {"mode": "loss", "tau": 1.0}

    def check(self) -> None:
        if self.params["mode"] not in MODES:
            raise UsageError(f"method 'logit-adjustment': mode must be one of {', '.join(MODES)}, "
                             f"got {self.params['mode']!r}")
        tau = float(self.params["tau"])
        if not math.isfinite(tau) or tau < 0:
            raise UsageError(f"method 'logit-adjustment': tau must be a finite number >= 0, got {self.params['tau']}")

    def criterion(self, ctx: Context):
        if self.params["mode"] != "loss":
            return None
        return LogitShiftCE(float(self.params["tau"]) * log_prior(ctx.instance_counts))

    def adjust_logits(self, logits: torch.Tensor, ctx: Context) -> torch.Tensor:
        if self.params["mode"] != "posthoc":
            return logits
        shift = float(self.params["tau"]) * log_prior(ctx.instance_counts).to(logits.device, logits.dtype)
        return logits - shift.view(1, -1, *([1] * (logits.ndim - 2)))
