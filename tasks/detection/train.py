"""The detection training loop and prediction, driven by a method's hooks.

Budgets come from the profile's ``detection`` block: ``epochs``, ``batch_size``, ``lr``,
``momentum``, ``weight_decay``, ``warmup_epochs``, ``lr_steps``, ``budget_unit`` (as in the
classification track: ``steps`` gives every method ``erm``'s optimizer steps, however much
``prepare`` enlarged the set) and ``augment`` (``none``, or ``hflip``: a horizontal flip of half the
images with their boxes and masks; ``auto`` = ``hflip`` for RGB images, ``none`` for digits,
whose flips are other glyphs).

What the hooks receive here:

* ``prepare(train: SceneSet, ctx) -> SceneSet``;
* ``sampler(train, ctx) -> weights (N,) | RepeatFactors | None`` over images;
* ``criterion(ctx) -> cls_loss(logits, classes) -> summed loss | None``: replaces the
  detector's box-classification loss (see ``models.py``; ``ctx.model_info["head"]`` says
  ``"sigmoid"`` or ``"softmax"``);
* ``adapt_model(detector, ctx) -> detector`` (e.g. to set ``roi_feature_hook``);
* ``augment((images, targets), ctx) -> (images, targets)``: images a list of float (C, H, W)
  in [0, 1], targets the canonical dicts (tv_tensors boxes and masks, so ``transforms.v2``
  keeps them consistent);
* ``adversary(detector, (images, targets), ctx) -> extra loss | None``;
* ``on_epoch(epoch, ctx)``.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ...benchmarks.contract import Context, Method, RepeatFactors
from ...benchmarks.contract.track import DivergenceError
from ...data_recipes.sceneset import SceneSet
from ..schedule import BUDGET_UNITS, batches, epoch_orders, learning_rate, sampling_plan

AUGMENT = ("none", "hflip", "auto")


def protocol_augment(name: str, channels: int) -> str:
    if name not in AUGMENT:
        raise ValueError(f"detection augment must be one of {', '.join(AUGMENT)}, got {name!r}")
    if name == "auto":
        return "hflip" if channels == 3 else "none"
    return name


def hflip(images: list[torch.Tensor], targets: list[dict], gen: torch.Generator):
    """Flip each image with probability 1/2, its boxes and masks with it."""
    flip = torch.rand(len(images), generator=gen) < 0.5
    out_i, out_t = [], []
    for img, t, f in zip(images, targets, flip.tolist()):
        if f:
            img = TF.horizontal_flip(img)
            t = {**t, "boxes": TF.horizontal_flip(t["boxes"])}
            if "masks" in t:
                t["masks"] = TF.horizontal_flip(t["masks"])
        out_i.append(img)
        out_t.append(t)
    return out_i, out_t


def model_targets(targets: list[dict], device) -> list[dict]:
    """What torchvision's detectors read: plain ``boxes`` and ``labels`` tensors; difficult
    objects are left out of training, as VOC's and COCO's protocols do."""
    out = []
    for t in targets:
        keep = ~t["difficult"]
        out.append({"boxes": t["boxes"].as_subclass(torch.Tensor)[keep].to(device),
                    "labels": t["labels"][keep].to(device)})
    return out


def fit(model, train: SceneSet, method: Method, ctx: Context, progress: bool = False,
        reference_size: int | None = None) -> tuple[dict, dict]:
    """Train ``model`` (a :class:`~.models.Detector`) in place; returns ``(history, training)``
    like the classification loop (per-epoch mean loss; budget unit, steps, images seen, ...)."""
    budget, device = ctx.budget, ctx.device
    epochs, batch_size = int(budget["epochs"]), int(budget["batch_size"])
    unit = budget.get("budget_unit", "steps")
    if unit not in BUDGET_UNITS:
        raise ValueError(f"budget_unit must be one of {', '.join(BUDGET_UNITS)}, got {unit!r}")
    ctx.epochs = epochs
    n = len(train)
    if n < 2:
        raise ValueError(f"training set has {n} image(s); at least 2 are needed")
    per_epoch = n if unit == "epochs" or reference_size is None else int(reference_size)
    sampling = sampling_plan(method.sampler(train, ctx), n, method.name)
    if unit == "epochs" and isinstance(sampling, RepeatFactors):
        per_epoch = None  # an epoch is one repeat-factor draw
    cls_loss = method.criterion(ctx)
    if isinstance(cls_loss, torch.nn.Module):
        cls_loss = cls_loss.to(device)
    model.cls_loss = cls_loss
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=float(budget["lr"]), momentum=float(budget.get("momentum", 0.9)),
                                weight_decay=float(budget.get("weight_decay", 0.0)))
    policy = protocol_augment(budget.get("augment", "none"), train.channels)
    aug_gen = ctx.generator("protocol-augment")
    orders = epoch_orders(n, per_epoch, sampling, ctx.generator("batch-order"))
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
        for idx in batches(len(order), batch_size, order):
            images = [train.images[i].to(device).float().div_(255.0) for i in idx.tolist()]
            targets = [train.targets[i] for i in idx.tolist()]
            if policy == "hflip":
                images, targets = hflip(images, targets, aug_gen)
            images, targets = method.augment((images, targets), ctx)
            losses = model(images, model_targets(targets, device))
            loss = sum(losses.values())
            extra = method.adversary(model, (images, targets), ctx)
            if extra is not None:
                loss = loss + extra
            if not torch.isfinite(loss):
                raise DivergenceError(f"loss became {loss.item()} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(images)
            seen += len(images)
            steps += 1
        seen_total += seen
        history.append(total / max(seen, 1))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    if history and not math.isfinite(history[-1]):
        raise DivergenceError("final training loss is not finite")
    training = {"budget_unit": unit, "epochs": epochs, "steps_per_epoch": steps // max(epochs, 1),
                "train_steps": steps, "images_seen": seen_total, "train_set_size": n,
                "reference_size": per_epoch if unit == "steps" else None, "augment": policy,
                "cls_loss": "method" if cls_loss is not None else "the detector's own"}
    return {"loss": [round(v, 6) for v in history]}, training


@torch.no_grad()
def predict(model, images: list[torch.Tensor], device, batch_size: int = 32) -> list[dict]:
    """Detections (boxes XYXY, scores, labels 0..K-1) per image, on the CPU."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        batch = [img.to(device).float().div_(255.0) for img in images[s:s + batch_size]]
        out += [{k: v.cpu() for k, v in d.items()} for d in model(batch)]
    return out
