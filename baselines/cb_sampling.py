"""Class-balanced sampling and its family (Kang et al., ICLR 2020, "Decoupling representation and
classifier"): a class is drawn with probability p_j = n_j^q / Σ_i n_i^q, then an image of it
uniformly."""
from __future__ import annotations

import math

import torch

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method


def class_sampling_weights(labels: torch.Tensor, num_classes: int, q: float) -> torch.Tensor:
    """Per-item weights (N,) of the q-sampling: item i of class j gets p_j / n_j = n_j^(q-1) / Σ n^q,
    so the items of class j together carry p_j. q = 1 instance-balanced (uniform), q = 0.5
    square-root, q = 0 class-balanced."""
    n = torch.bincount(labels.cpu(), minlength=num_classes).double()
    p = torch.where(n > 0, n.pow(q), torch.zeros_like(n))
    p = p / p.sum()
    per_item = torch.where(n > 0, p / n.clamp_min(1), torch.zeros_like(n))
    return per_item[labels.cpu()]


def check_q(method: str, q) -> None:
    q = float(q)
    if not math.isfinite(q) or not 0.0 <= q <= 1.0:
        raise UsageError(f"method {method!r}: q must be in [0, 1] (0 class-balanced, 0.5 square-root, "
                         f"1 instance-balanced), got {q}")


@register_method
class CBSampling(Method):
    """Batches drawn with replacement from the q-sampling weights of the set the model trains on
    (``q`` 0 by default: class-balanced). Kang et al.'s class-aware sampler cycles through the
    classes and each class's shuffled images; imbench draws the same distribution by
    ``torch.multinomial`` over the items (the track's weighted sampling), so each epoch keeps
    erm's optimizer steps. ``balanced-softmax+cb-sampling`` corrects twice (see
    ``balanced-softmax``)."""

    name = "cb-sampling"
    family = "baseline"
    tracks = ("classification",)
    summary = "Class-balanced (q=0), square-root (q=0.5) or instance-balanced (q=1) sampling of the batches"
    reference = ("Kang, Xie, Rohrbach, Yan, Gordo, Feng & Kalantidis, Decoupling Representation and "
                 "Classifier for Long-Tailed Recognition, ICLR 2020")
    defaults = {"q": 0.0}

    def check(self) -> None:
        check_q(self.name, self.params["q"])

    def sampler(self, train, ctx: Context):
        return class_sampling_weights(train.labels, ctx.num_classes, float(self.params["q"]))
