"""Box-classification losses for the detection track's ``cls_loss`` slot.

Each takes ``logits`` and ``classes`` (M,) in {-1 background, 0..K-1} and returns a *sum* (the
detector normalises it, see ``imbench.tasks.detection.models``). ``head`` is the detector's
(``ctx.model_info["head"]``): ``"sigmoid"`` logits are (M, K) one-vs-all scores (FCOS, RetinaNet);
``"softmax"`` logits are (M, K+1) with column 0 the background (Faster R-CNN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss


def one_hot_targets(logits: Tensor, classes: Tensor) -> Tensor:
    """(M, K) 0/1 targets of a sigmoid head; background rows all zero."""
    target = torch.zeros_like(logits)
    fg = classes >= 0
    target[fg, classes[fg]] = 1.0
    return target


def class_weights_per_item(weights: Tensor | None, classes: Tensor, background: float = 1.0) -> Tensor | None:
    """Per-item weights: the weight of the item's class, ``background`` for background items."""
    if weights is None:
        return None
    w = torch.full(classes.shape, float(background), dtype=weights.dtype, device=classes.device)
    fg = classes >= 0
    w[fg] = weights.to(classes.device)[classes[fg]]
    return w


def sigmoid_focal(logits: Tensor, classes: Tensor, *, alpha: float, gamma: float,
                  weights: Tensor | None = None) -> Tensor:
    """torchvision's ``sigmoid_focal_loss`` (alpha < 0: no alpha-balancing; gamma 0: BCE), each
    item's row scaled by its class weight."""
    loss = sigmoid_focal_loss(logits, one_hot_targets(logits, classes), alpha=alpha, gamma=gamma, reduction="none")
    w = class_weights_per_item(weights, classes)
    return (loss if w is None else loss * w[:, None].to(loss.dtype)).sum()


def softmax_focal(logits: Tensor, classes: Tensor, *, gamma: float, alpha_t: Tensor | None = None,
                  weights: Tensor | None = None) -> Tensor:
    """Softmax focal loss over background + K classes: −α_t (1 − p_t)^γ log p_t (γ 0: CE);
    ``alpha_t`` / ``weights`` per object class (background 1)."""
    target = classes + 1
    logp_t = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    loss = -logp_t
    if gamma != 0.0:
        loss = (-torch.expm1(logp_t)).clamp_min(1e-12).pow(gamma) * loss
    for w in (class_weights_per_item(alpha_t, classes), class_weights_per_item(weights, classes)):
        if w is not None:
            loss = loss * w.to(loss.dtype)
    return loss.sum()
