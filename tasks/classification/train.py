"""The classification training loop and prediction, driven by a method's hooks.

Budgets come from the profile (``benchmarks/profiles.yaml``): ``epochs``, ``batch_size``,
``lr``, ``momentum``, ``weight_decay``, ``warmup_epochs`` (linear warm-up, per epoch, as in
LDAM-DRW's ``adjust_learning_rate``), ``lr_steps`` ({epoch: multiplier of the base lr}),
``budget_unit`` (``steps``: every method makes ``erm``'s optimizer steps; ``epochs``: epochs over
each method's own training set) and ``augment`` (the protocol's standard augmentation).
Images stay uint8 on the device and are scaled to [0, 1] batch by batch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...benchmarks.contract import Context, Method
from ...data_recipes.imageset import ImageSet
from ..precision import autocast, layout_name, memory_layout
from ..schedule import epoch_plan, sgd, train_epochs, training_record
from .augmentation import apply_policy, protocol_policy


def fit(model: torch.nn.Module, train: ImageSet, method: Method, ctx: Context, progress: bool = False,
        reference_size: int | None = None) -> tuple[dict, dict]:
    """Train ``model`` in place on ``train`` with the method's hooks.

    The budget: ``epochs`` of ``reference_size`` items each when the profile's ``budget_unit`` is
    ``steps`` (the default; the track passes the size of the recipe's imbalanced split, so every
    method of a cell makes the optimizer steps ``erm`` makes, however much ``prepare`` enlarged or
    shrank the set), or ``epochs`` over the set it is given when it is ``epochs``
    (``reference_size=None`` means the same). The learning-rate schedule and ``on_epoch`` count
    these epochs. The profile's ``augment`` (``none``, ``auto``, ``digits``, ``natural``) is applied
    to every batch before the method's own ``augment``.

    Returns ``(history, training)``: the per-epoch mean loss, and ``budget_unit``, ``epochs``,
    ``steps_per_epoch``, ``train_steps``, ``images_seen``, ``train_set_size``, ``reference_size``,
    ``augment`` (the policy applied).
    """
    budget, device = ctx.budget, ctx.device
    images = train.images.to(device)
    labels = train.labels.to(device)
    plan = epoch_plan(train, method, ctx, reference_size)
    loss_fn = method.criterion(ctx)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn = loss_fn.to(device)
    if loss_fn is None:
        loss_fn = F.cross_entropy
    optimizer = sgd(model.parameters(), budget)
    policy = protocol_policy(budget.get("augment", "none"), train.image_shape[0], ctx.dataset)
    aug_gen = ctx.generator("protocol-augment")
    layout = memory_layout(model, device)

    def batch_loss(idx):
        x = images[idx].float().div_(255.0)
        y = labels[idx]
        x = apply_policy(policy, x, aug_gen, ctx.dataset)
        x, y = method.augment((x, y), ctx)
        with autocast(budget, device):
            logits = model(x.contiguous(memory_format=layout))
        return loss_fn(logits.float(), y), (x, y), len(y)

    history, steps, seen = train_epochs(model, optimizer, method, ctx, plan, batch_loss, progress=progress,
                                        index_device=device)
    return {"loss": [round(v, 6) for v in history]}, training_record(
        plan, steps, seen, policy, precision=budget.get("precision", "fp32"), memory_format=layout_name(layout))


@torch.inference_mode()
def predict(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1024,
            budget: dict | None = None, adjust=None) -> np.ndarray:
    """Arg-max class predictions for uint8 images (N, C, H, W), without autograd, in the budget's
    precision and the track's memory layout; ``adjust`` (a method's ``adjust_logits`` bound to its
    context) changes the fp32 logits before the arg-max."""
    model.eval()
    layout = memory_layout(model, device)
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size].to(device).float().div_(255.0).contiguous(memory_format=layout)
        with autocast(budget or {}, device):
            logits = model(x)
        logits = logits.float()
        if adjust is not None:
            logits = adjust(logits)
        out.append(logits.argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
