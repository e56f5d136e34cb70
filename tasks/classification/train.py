"""The classification training loop and prediction, driven by a method's hooks.

Budgets come from the profile (``benchmarks/profiles.yaml``): ``epochs``, ``batch_size``,
``lr``, ``momentum``, ``weight_decay``, ``warmup_epochs`` (linear warm-up, per epoch, as in
LDAM-DRW's ``adjust_learning_rate``), ``lr_steps`` ({epoch: multiplier of the base lr}),
``budget_unit`` (``steps``: every method makes ``erm``'s optimizer steps; ``epochs``: epochs over
each method's own training set) and ``augment`` (the protocol's standard augmentation).
Images stay uint8 on the device and are scaled to [0, 1] batch by batch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...benchmarks.contract import Context, Method, RepeatFactors
from ...data_recipes.imageset import ImageSet
from ...benchmarks.contract.track import DivergenceError
from ..schedule import BUDGET_UNITS, epoch_orders, learning_rate, sampling_plan, batches
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
    epochs, batch_size = int(budget["epochs"]), int(budget["batch_size"])
    unit = budget.get("budget_unit", "steps")
    if unit not in BUDGET_UNITS:
        raise ValueError(f"budget_unit must be one of {', '.join(BUDGET_UNITS)}, got {unit!r}")
    ctx.epochs = epochs
    images = train.images.to(device)
    labels = train.labels.to(device)
    n = len(train)
    if n < 2:
        raise ValueError(f"training set has {n} item(s); at least 2 are needed")
    per_epoch = n if unit == "epochs" or reference_size is None else int(reference_size)
    if per_epoch < 2:
        raise ValueError(f"an epoch of {per_epoch} item(s) is too short; at least 2 are needed")
    weights = sampling_plan(method.sampler(train, ctx), n, method.name)
    if unit == "epochs" and isinstance(weights, RepeatFactors):
        per_epoch = None  # an epoch is one repeat-factor draw
    loss_fn = method.criterion(ctx)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn = loss_fn.to(device)
    if loss_fn is None:
        loss_fn = F.cross_entropy
    optimizer = torch.optim.SGD(
        model.parameters(), lr=float(budget["lr"]), momentum=float(budget.get("momentum", 0.9)),
        weight_decay=float(budget.get("weight_decay", 0.0)),
    )
    policy = protocol_policy(budget.get("augment", "none"), train.image_shape[0], ctx.dataset)
    aug_gen = ctx.generator("protocol-augment")
    orders = epoch_orders(n, per_epoch, weights, ctx.generator("batch-order"))
    history, steps, seen_total = [], 0, 0
    bar = tqdm(range(epochs), desc="  epochs", leave=False, disable=not progress, unit="ep")
    for epoch in bar:
        ctx.epoch = epoch
        method.on_epoch(epoch, ctx)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(epoch, budget)
        model.train()
        order = next(orders)
        total, seen = 0.0, 0
        for idx in batches(len(order), batch_size, order.to(device)):
            x = images[idx].float().div_(255.0)
            y = labels[idx]
            x = apply_policy(policy, x, aug_gen, ctx.dataset)
            x, y = method.augment((x, y), ctx)
            loss = loss_fn(model(x), y)
            extra = method.adversary(model, (x, y), ctx)
            if extra is not None:
                loss = loss + extra
            if not torch.isfinite(loss):
                raise DivergenceError(f"loss became {loss.item()} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            seen += len(y)
            steps += 1
        seen_total += seen
        history.append(total / max(seen, 1))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    if history and not math.isfinite(history[-1]):
        raise DivergenceError("final training loss is not finite")
    training = {"budget_unit": unit, "epochs": epochs, "steps_per_epoch": steps // max(epochs, 1),
                "train_steps": steps, "images_seen": seen_total, "train_set_size": n,
                "reference_size": per_epoch if unit == "steps" else None, "augment": policy}
    return {"loss": [round(v, 6) for v in history]}, training


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> np.ndarray:
    """Arg-max class predictions for uint8 images (N, C, H, W)."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size].to(device).float().div_(255.0)
        out.append(model(x).argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
