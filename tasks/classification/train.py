"""The classification training loop and prediction, driven by a method's hooks.

Budgets come from the profile (``benchmarks/profiles.yaml``): ``epochs``, ``batch_size``,
``lr``, ``momentum``, ``weight_decay``, ``warmup_epochs`` (linear warm-up, per epoch, as in
LDAM-DRW's ``adjust_learning_rate``) and ``lr_steps`` ({epoch: multiplier of the base lr}).
Images stay uint8 on the device and are scaled to [0, 1] batch by batch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...benchmarks.method import Context, Method
from ...data_recipes.imageset import ImageSet
from ..track import DivergenceError


def learning_rate(epoch: int, budget: dict) -> float:
    """The learning rate of ``epoch`` (0-based): warm-up, then step multipliers."""
    base = float(budget["lr"])
    warmup = int(budget.get("warmup_epochs", 0))
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    factor = 1.0
    for start, mult in sorted((int(k), float(v)) for k, v in (budget.get("lr_steps") or {}).items()):
        if epoch >= start:
            factor = mult
    return base * factor


def _batches(n: int, batch_size: int, order: torch.Tensor):
    """Split ``order`` into batches, folding a trailing batch of one item into the previous
    one (BatchNorm cannot train on a single item)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else n
        yield order[s:e]


def fit(model: torch.nn.Module, train: ImageSet, method: Method, ctx: Context, progress: bool = False) -> dict:
    """Train ``model`` in place on ``train`` with the method's hooks; returns the loss history."""
    budget, device = ctx.budget, ctx.device
    epochs, batch_size = int(budget["epochs"]), int(budget["batch_size"])
    ctx.epochs = epochs
    images = train.images.to(device)
    labels = train.labels.to(device)
    n = len(train)
    if n < 2:
        raise ValueError(f"training set has {n} item(s); at least 2 are needed")
    weights = method.sampler(train, ctx)
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float64).cpu()
        if weights.shape != (n,) or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"method {method.name!r} returned invalid sampling weights")
    loss_fn = method.criterion(ctx)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn = loss_fn.to(device)
    if loss_fn is None:
        loss_fn = F.cross_entropy
    optimizer = torch.optim.SGD(
        model.parameters(), lr=float(budget["lr"]), momentum=float(budget.get("momentum", 0.9)),
        weight_decay=float(budget.get("weight_decay", 0.0)),
    )
    order_gen = ctx.generator("batch-order")
    history = []
    bar = tqdm(range(epochs), desc="  epochs", leave=False, disable=not progress, unit="ep")
    for epoch in bar:
        ctx.epoch = epoch
        method.on_epoch(epoch, ctx)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(epoch, budget)
        model.train()
        if weights is None:
            order = torch.randperm(n, generator=order_gen)
        else:
            order = torch.multinomial(weights, n, replacement=True, generator=order_gen)
        total, seen = 0.0, 0
        for idx in _batches(n, batch_size, order.to(device)):
            x = images[idx].float().div_(255.0)
            y = labels[idx]
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
        history.append(total / max(seen, 1))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    if history and not math.isfinite(history[-1]):
        raise DivergenceError("final training loss is not finite")
    return {"loss": [round(v, 6) for v in history]}


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> np.ndarray:
    """Arg-max class predictions for uint8 images (N, C, H, W)."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size].to(device).float().div_(255.0)
        out.append(model(x).argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
