"""The segmentation training loop and prediction, driven by a method's hooks.

Budgets come from the profile's ``segmentation`` block: ``epochs``, ``batch_size``, ``lr``,
``momentum``, ``weight_decay``, ``warmup_epochs``, ``lr_steps``, ``budget_unit`` (``steps``: every
method makes ``erm``'s optimizer steps, however much ``prepare`` enlarged the set) and ``augment``
(``none``; ``hflip``: a horizontal flip of half the images with their label maps; ``auto`` =
``hflip`` for RGB images, ``none`` for digits, whose flips are other glyphs).

What the hooks receive here:

* ``prepare(train: SegSet, ctx) -> SegSet`` (resampling, pasting, synthetic images);
* ``sampler(train, ctx) -> weights (N,) | RepeatFactors | None`` over images;
* ``criterion(ctx) -> loss(logits (B, K, H, W), labels (B, H, W) int64) -> scalar``; pixels
  labelled ``ctx.ignore_index`` (void, and the padding of a batch of unequal images) must not
  count -- the wrappers of :mod:`.losses` do that; None = pixel cross-entropy (``erm``);
* ``adapt_model(segmenter, ctx) -> segmenter``;
* ``augment((x, y), ctx) -> (x, y)``: ``x`` float (B, C, H, W) in [0, 1], ``y`` int64 (B, H, W);
* ``adversary(segmenter, (x, y), ctx) -> extra loss | None`` (``segmenter(x)`` gives logits);
* ``on_epoch(epoch, ctx)``.
"""
from __future__ import annotations

import torch

from ...benchmarks.contract import Context, Method
from ...data_recipes.segset import SegSet
from ..precision import autocast, layout_name, memory_layout
from ..schedule import FLIP_POLICIES, epoch_plan, flip_policy, sgd, train_epochs, training_record
from .losses import PixelCE

AUGMENT = FLIP_POLICIES


def collate(images: list[torch.Tensor], masks: list[torch.Tensor], ignore_index: int, device
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``(x, y)``: images as float in [0, 1]; unequal sizes padded to the largest (images
    with 0, labels with ``ignore_index``, so padding counts in no loss)."""
    H = max(int(i.shape[1]) for i in images)
    W = max(int(i.shape[2]) for i in images)
    x = torch.zeros(len(images), images[0].shape[0], H, W, device=device)
    y = torch.full((len(images), H, W), ignore_index, dtype=torch.int64, device=device)
    for k, (img, m) in enumerate(zip(images, masks)):
        h, w = m.shape
        x[k, :, :h, :w] = img.to(device).float().div_(255.0)
        y[k, :h, :w] = m.to(device)
    return x, y


def pixel_ce(ignore_index: int) -> PixelCE:
    """``erm``: mean cross-entropy over the labelled pixels (0 when a batch has none)."""
    return PixelCE(ignore_index)


def hflip(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    flip = (torch.rand(len(x), generator=gen) < 0.5).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    return x, y


def fit(model, train: SegSet, method: Method, ctx: Context, progress: bool = False,
        reference_size: int | None = None) -> tuple[dict, dict]:
    """Train ``model`` (a :class:`~.models.Segmenter`) in place; ``(history, training)``."""
    budget, device = ctx.budget, ctx.device
    plan = epoch_plan(train, method, ctx, reference_size)
    criterion = method.criterion(ctx)
    if isinstance(criterion, torch.nn.Module):
        criterion = criterion.to(device)
    loss_fn = criterion if criterion is not None else pixel_ce(train.ignore_index)
    optimizer = sgd([p for p in model.parameters() if p.requires_grad], budget)
    channels = int(train.images[0].shape[0]) if len(train) else 1
    policy = flip_policy(budget.get("augment", "none"), channels, "segmentation")
    aug_gen = ctx.generator("protocol-augment")
    layout = memory_layout(model, device)

    def batch_loss(idx):
        ids = idx.tolist()
        x, y = collate([train.images[i] for i in ids], [train.masks[i] for i in ids], train.ignore_index, device)
        if policy == "hflip":
            x, y = hflip(x, y, aug_gen)
        x, y = method.augment((x, y), ctx)
        with autocast(budget, device):
            logits = model(x.contiguous(memory_format=layout))
        return loss_fn(logits.float(), y), (x, y), len(ids)

    history, steps, seen = train_epochs(model, optimizer, method, ctx, plan, batch_loss, progress=progress)
    training = training_record(plan, steps, seen, policy,
                               loss="method" if criterion is not None else "pixel cross-entropy",
                               precision=budget.get("precision", "fp32"), memory_format=layout_name(layout))
    return {"loss": [round(v, 6) for v in history]}, training


@torch.inference_mode()
def predict(model, images: list[torch.Tensor], device, batch_size: int = 128, budget: dict | None = None,
            adjust=None) -> list[torch.Tensor]:
    """Per image, the (H, W) int64 arg-max label map, on the CPU; images of equal size batched,
    without autograd, in the budget's precision and the track's memory layout; ``adjust`` (a
    method's ``adjust_logits`` bound to its context) changes the fp32 (N, C, H, W) logits before
    the arg-max."""
    model.eval()
    layout = memory_layout(model, device)
    out: list[torch.Tensor | None] = [None] * len(images)
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(tuple(img.shape), []).append(i)
    for ids in by_shape.values():
        for s in range(0, len(ids), batch_size):
            chunk = ids[s:s + batch_size]
            x = torch.stack([images[i] for i in chunk]).to(device).float().div_(255.0)
            with autocast(budget or {}, device):
                logits = model(x.contiguous(memory_format=layout))
            logits = logits.float()
            pred = (logits if adjust is None else adjust(logits)).argmax(1).cpu()
            for i, p in zip(chunk, pred):
                out[i] = p
    return out  # type: ignore[return-value]
