"""τ-normalised classifier (Kang et al., ICLR 2020, "Decoupling representation and classifier"),
as ``facebookresearch/classifier-balancing``'s ``tau_norm.py``, with τ chosen on a validation split
carved from the training set."""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..data_recipes.validation import carve_indices

TAU_GRID = tuple(round(float(t), 2) for t in np.linspace(0.0, 2.0, 21))  # the official search
CARVE_TAG = 0x7A2  # tau-norm's own carve stream


def tau_normalise(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """W with each class row divided by its L2 norm to the power τ (the official ``pnorm``)."""
    return weight / weight.norm(dim=1, keepdim=True).pow(tau)


@register_method
class TauNorm(Method):
    """erm's training, then the linear classifier's rows rescaled w_c / ‖w_c‖^τ and its bias dropped
    (logits are the dot products, as the official ``tau_norm.py``); nothing is trained again.

    ``tau`` ``auto`` (default): τ is the value of the official grid 0, 0.1, ..., 2 with the best
    balanced accuracy on a validation split that ``prepare`` carves from the training set
    (``val_fraction`` 0.2; seeded by the cell's seed, stratified by class as ``--validation``'s
    carve: a class of n ≥ 2 images gives max(1, round(0.2·n)), at most n − 1; on
    ties the smallest), so the model trains without those images. A number fixes τ and carves nothing. The
    scores of the grid and the τ chosen are recorded (``extras.tau_norm``).
    """

    name = "tau-norm"
    family = "baseline"
    tracks = ("classification",)
    summary = "Decoupling, tau-norm: erm's training, then classifier rows scaled by 1/||w_c||^tau (tau on a carved validation split)"
    reference = ("Kang, Xie, Rohrbach, Yan, Gordo, Feng & Kalantidis, Decoupling Representation and "
                 "Classifier for Long-Tailed Recognition, ICLR 2020 (tau-normalised classifier)")
    defaults = {"tau": "auto", "val_fraction": 0.2}

    def check(self) -> None:
        if self.params["tau"] != "auto":
            try:
                tau = float(self.params["tau"])
            except ValueError:
                tau = math.nan
            if not math.isfinite(tau) or tau < 0:
                raise UsageError(f"method 'tau-norm': tau must be 'auto' or a number >= 0, got {self.params['tau']!r}")
        f = float(self.params["val_fraction"])
        if not 0.0 < f < 1.0:
            raise UsageError(f"method 'tau-norm': val_fraction must be in (0, 1), got {self.params['val_fraction']}")

    def prepare(self, train, ctx: Context):
        self._val = None
        if self.params["tau"] != "auto":
            return train
        keep, val = carve_indices(train, train.counts(), float(self.params["val_fraction"]), ctx.seed, CARVE_TAG)
        self._val = train.subset(val)
        ctx.note("tau_norm_carve", {"n_train": int(len(keep)), "n_val": int(len(val)),
                                    "val_counts": self._val.counts()})
        return train.subset(keep)

    def adapt_model(self, model: nn.Module, ctx: Context) -> nn.Module:
        if not isinstance(getattr(model, "classifier", None), nn.Linear) or not hasattr(model, "embed"):
            raise UsageError("method 'tau-norm' needs a model with embed(x) and a linear classifier")
        return model

    @torch.no_grad()
    def second_stage(self, model: nn.Module, ctx: Context) -> nn.Module:
        head = model.classifier
        weight = head.weight.detach().clone()
        if self._val is None:
            tau, scores = float(self.params["tau"]), None
        else:
            feats = self._features(model, self._val.images, ctx.device)
            labels = self._val.labels.numpy()
            scores = {}
            for t in TAU_GRID:
                pred = (feats @ tau_normalise(weight, t).t().to(feats)).argmax(1).cpu().numpy()
                scores[t] = float(balanced_accuracy_score(labels, pred))
            tau = max(TAU_GRID, key=lambda t: (scores[t], -t))
        head.weight.copy_(tau_normalise(weight, tau))
        if head.bias is not None:
            head.bias.zero_()
        ctx.note("tau_norm", {"tau": tau, "grid_balanced_accuracy": scores})
        return model

    @staticmethod
    def _features(model: nn.Module, images: torch.Tensor, device, batch_size: int = 1024) -> torch.Tensor:
        model.eval()
        out = [model.embed(images[s:s + batch_size].to(device).float().div(255.0))
               for s in range(0, len(images), batch_size)]
        return torch.cat(out).float()
