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


import torch
from torchvision.transforms.v2 import functional as TF

from ...benchmarks.contract import Context, Method
from ...data_recipes.sceneset import SceneSet
from ..precision import autocast
from ..schedule import FLIP_POLICIES, epoch_plan, flip_policy, sgd, train_epochs, training_record

AUGMENT = FLIP_POLICIES


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
    plan = epoch_plan(train, method, ctx, reference_size)
    cls_loss = method.criterion(ctx)
    if isinstance(cls_loss, torch.nn.Module):
        cls_loss = cls_loss.to(device)
    model.cls_loss = cls_loss
    optimizer = sgd([p for p in model.parameters() if p.requires_grad], budget)
    policy = flip_policy(budget.get("augment", "none"), train.channels, "detection")
    aug_gen = ctx.generator("protocol-augment")

    def batch_loss(idx):
        images = [train.images[i].to(device).float().div_(255.0) for i in idx.tolist()]
        targets = [train.targets[i] for i in idx.tolist()]
        if policy == "hflip":
            images, targets = hflip(images, targets, aug_gen)
        images, targets = method.augment((images, targets), ctx)
        with autocast(budget, device):
            losses = model(images, model_targets(targets, device))
        return sum(v.float() for v in losses.values()), (images, targets), len(images)

    history, steps, seen = train_epochs(model, optimizer, method, ctx, plan, batch_loss, progress=progress)
    training = training_record(plan, steps, seen, policy,
                               cls_loss="method" if cls_loss is not None else "the detector's own",
                               precision=budget.get("precision", "fp32"), memory_format="contiguous")
    return {"loss": [round(v, 6) for v in history]}, training


@torch.inference_mode()
def predict(model, images: list[torch.Tensor], device, batch_size: int = 32, budget: dict | None = None) -> list[dict]:
    """Detections (boxes XYXY, scores, labels 0..K-1) per image, on the CPU, without autograd and
    in the budget's precision (boxes and scores returned as fp32)."""
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        batch = [img.to(device).float().div_(255.0) for img in images[s:s + batch_size]]
        with autocast(budget or {}, device):
            dets = model(batch)
        out += [{k: (v.float() if v.is_floating_point() else v).cpu() for k, v in d.items()} for d in dets]
    return out
