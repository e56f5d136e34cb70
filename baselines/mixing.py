"""Mixed batches for ``mixup-drw`` and ``remix-drw`` (imbalanced-DL's ``Mixup_DRW`` / ``Remix_DRW``
strategies, ntucllab/imbalanced-DL): the mixed labels a batch carries, the DRW-weighted loss on
them, and the schedule both methods share."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..tasks.schedule import epoch_at
from .class_weights import class_balanced_weights


@dataclass
class MixedLabels:
    """The labels of a mixed batch: item i is ``lam[i]`` of class ``a[i]`` and ``1 - lam[i]`` of
    class ``b[i]``."""

    a: torch.Tensor
    b: torch.Tensor
    lam: torch.Tensor

    def __len__(self) -> int:
        return len(self.a)


class MixedDRWLoss(nn.Module):
    """imbalanced-DL's loss: CE(weight=w, reduction='none') per item, mixed as
    λ_i·CE(z_i, a_i)·w_{a_i} + (1 − λ_i)·CE(z_i, b_i)·w_{b_i}, then the batch *mean* (not divided
    by the weights' sum, unlike torch's weighted mean). ``weight`` is a buffer of ones until DRW
    switches it to the class-balanced weights. Plain labels: the same with λ = 1."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("weight", torch.ones(num_classes))

    def forward(self, logits: torch.Tensor, y) -> torch.Tensor:
        w = self.weight.to(logits.dtype)
        if not isinstance(y, MixedLabels):
            return F.cross_entropy(logits, y, weight=w, reduction="none").mean()
        lam = y.lam.to(logits.dtype)
        return (lam * F.cross_entropy(logits, y.a, weight=w, reduction="none")
                + (1 - lam) * F.cross_entropy(logits, y.b, weight=w, reduction="none")).mean()


class MixingDRW(Method):
    """The shared part of ``mixup-drw`` and ``remix-drw``: every batch is mixed with a seeded
    permutation of itself, x' = λ·x + (1 − λ)·x[perm] with one λ ~ Beta(α, α) per batch, and trained
    with :class:`MixedDRWLoss`, whose weights turn class-balanced (β 0.9999) at ⌊``drw_start`` ·
    epochs⌋ (imbalanced-DL: epoch 160 of 200). Subclasses set the label weights λ_i
    (:meth:`label_weights`). imbalanced-DL also runs the model on the unmixed batch, for its
    training accuracy only; imbench does not (that forward pass would also move BatchNorm's
    running statistics towards the unmixed images)."""

    family = "baseline"
    tracks = ("classification",)
    defaults = {"alpha": 1.0, "beta": 0.9999, "drw_start": 0.8}

    def check(self) -> None:
        p = self.params
        for key, ok, rule in (("alpha", lambda v: v > 0, "> 0"), ("beta", lambda v: 0 <= v < 1, "in [0, 1)"),
                              ("drw_start", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")):
            v = float(p[key])
            if not math.isfinite(v) or not ok(v):
                raise UsageError(f"method {self.name!r}: {key} must be {rule}, got {p[key]}")

    def drw_epoch(self, epochs: int) -> int:
        return epoch_at(self.params["drw_start"], epochs)

    def criterion(self, ctx: Context):
        self._loss = MixedDRWLoss(ctx.num_classes)
        self._drw_weights = class_balanced_weights(ctx.instance_counts, float(self.params["beta"]))
        self._counts = torch.tensor(ctx.instance_counts, dtype=torch.float64)
        ctx.note("drw_start_epoch", self.drw_epoch(ctx.epochs))
        return self._loss

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch == 0:
            self._rng = ctx.rng(f"{self.name}-lambda")
            self._gen = ctx.generator(f"{self.name}-permutation")
        if getattr(self, "_loss", None) is not None:
            on = epoch >= self.drw_epoch(ctx.epochs)
            with torch.no_grad():
                self._loss.weight.copy_(self._drw_weights if on else torch.ones_like(self._drw_weights))

    def label_weights(self, lam: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """λ_i (B,) of the labels: mixup's λ for every item."""
        return torch.full(a.shape, lam, dtype=torch.float32)

    def augment(self, batch, ctx: Context):
        x, y = batch
        lam = float(self._rng.beta(float(self.params["alpha"]), float(self.params["alpha"])))
        perm = torch.randperm(len(y), generator=self._gen).to(y.device)
        mixed = lam * x + (1 - lam) * x[perm]
        return mixed, MixedLabels(y, y[perm], self.label_weights(lam, y, y[perm]).to(x.device))


def remix_label_weights(lam: float, n_a: torch.Tensor, n_b: torch.Tensor, kappa: float, tau: float) -> torch.Tensor:
    """Remix's λ_y per item (Chou et al. 2020): 0 where n_a / n_b ≥ κ and λ < τ (the label goes
    all to the rarer class b), 1 where n_a / n_b ≤ 1/κ and 1 − λ < τ (all to a), else λ."""
    ratio = (n_a / n_b).numpy()
    out = np.full(ratio.shape, lam, dtype=np.float32)
    out[(ratio >= kappa) & (lam < tau)] = 0.0
    out[(ratio <= 1.0 / kappa) & (1.0 - lam < tau)] = 1.0
    return torch.from_numpy(out)
