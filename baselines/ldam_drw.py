"""LDAM-DRW: label-distribution-aware margins with deferred re-weighting (Cao et al. 2019)."""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from ..tasks.schedule import epoch_at
from .class_weights import class_balanced_weights


class NormedLinear(nn.Module):
    """Cosine classifier of kaidic/LDAM-DRW: normalised features times normalised weight columns."""

    def __init__(self, in_features: int, out_features: int, generator: torch.Generator | None = None):
        super().__init__()
        w = torch.empty(in_features, out_features).uniform_(-1, 1, generator=generator)
        self.weight = nn.Parameter(w.renorm_(2, 1, 1e-5).mul_(1e5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class LDAMLoss(nn.Module):
    """CE(s · (z − m_y·onehot(y)), y, weight) with m_c ∝ n_c^{-1/4}, max m_c = ``max_m``.

    ``weight`` is a buffer of ones until DRW switches it to class-balanced weights.
    """

    def __init__(self, counts, max_m: float = 0.5, s: float = 30.0):
        super().__init__()
        m = 1.0 / np.sqrt(np.sqrt(np.maximum(np.asarray(counts, dtype=np.float64), 1.0)))
        self.register_buffer("margins", torch.tensor(m * (max_m / m.max()), dtype=torch.float32))
        self.register_buffer("weight", torch.ones(len(counts)))
        self.s = float(s)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        adjusted = logits - onehot * self.margins.to(logits.dtype)[targets][:, None]
        return F.cross_entropy(self.s * adjusted, targets, weight=self.weight.to(logits.dtype))


@register_method
class LDAMDRW(Method):
    """Cosine classifier + LDAM loss; from epoch ⌊drw_start · epochs⌋ the CE weights become the
    class-balanced weights (β = ``beta``, summing to C), before that all 1 (``drw=False``: plain
    LDAM throughout). Counts are the recipe's (``ctx.instance_counts``; an empty class counts as 1
    for its margin). Defaults are the paper's CIFAR setting (DRW at 160 of 200 epochs).
    """

    name = "ldam-drw"
    family = "baseline"
    tracks = ("classification",)
    summary = "LDAM margin loss on a cosine classifier with deferred class-balanced re-weighting (DRW)"
    reference = "Cao, Wei, Gaidon, Arechiga & Ma, Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019"
    defaults = {"max_m": 0.5, "s": 30.0, "beta": 0.9999, "drw_start": 0.8, "drw": True}

    def check(self) -> None:
        p = self.params
        if float(p["max_m"]) <= 0 or float(p["s"]) <= 0:
            raise UsageError(f"method 'ldam-drw': max_m and s must be > 0, got {p['max_m']} and {p['s']}")
        if not 0.0 <= float(p["beta"]) < 1.0:
            raise UsageError(f"method 'ldam-drw': beta must be in [0, 1), got {p['beta']}")
        if not 0.0 <= float(p["drw_start"]) <= 1.0:
            raise UsageError(f"method 'ldam-drw': drw_start must be a fraction in [0, 1], got {p['drw_start']}")

    def adapt_model(self, model: nn.Module, ctx: Context) -> nn.Module:
        old = model.classifier
        new = NormedLinear(old.in_features, old.out_features, ctx.generator(self.name))
        model.classifier = new.to(device=old.weight.device, dtype=old.weight.dtype)
        return model

    def drw_epoch(self, epochs: int) -> int:
        """The first epoch (0-based) trained with class-balanced weights."""
        return epoch_at(self.params["drw_start"], epochs)

    def criterion(self, ctx: Context):
        self._loss = LDAMLoss(ctx.instance_counts, float(self.params["max_m"]), float(self.params["s"]))
        self._drw_weights = class_balanced_weights(ctx.instance_counts, float(self.params["beta"]))
        if self.params["drw"]:
            ctx.note("drw_start_epoch", self.drw_epoch(ctx.epochs))
        return self._loss

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if not self.params["drw"] or getattr(self, "_loss", None) is None:
            return
        on = epoch >= self.drw_epoch(ctx.epochs)
        w = self._drw_weights if on else torch.ones_like(self._drw_weights)
        with torch.no_grad():
            self._loss.weight.copy_(w)
