"""The detection contract checks: a tiny imbalanced SceneSet, its Context, every hook on FCOS
(and, for a method that changes the model, Faster R-CNN too)."""
from __future__ import annotations

import json

import torch

from ..benchmarks.contract import Context, Method, RepeatFactors
from ..data_recipes.sceneset import SceneSet, make_target
from .classification import scheduled_lr

SIZE = 32


def tiny_sceneset(counts=(12, 4, 2), size: int = SIZE, seed: int = 0) -> SceneSet:
    """A small imbalanced scene set: ``counts[c]`` objects of class ``c`` (filled squares of a
    class-specific brightness and size), one or two per image, with exact boxes and masks; two
    extra images hold no object."""
    g = torch.Generator().manual_seed(seed)
    objects = [c for c, n in enumerate(counts) for _ in range(n)]
    objects = [objects[i] for i in torch.randperm(len(objects), generator=g).tolist()]
    images, targets = [], []
    while objects or len(images) < 2:
        take, objects = (objects[:2], objects[2:]) if objects else ([], [])
        img = (torch.rand((1, size, size), generator=g) * 30).to(torch.uint8)
        boxes, masks = [], []
        for k, c in enumerate(take):
            side = 6 + 2 * c
            x0 = 2 + k * (size // 2)
            y0 = int(torch.randint(1, size - side - 1, (1,), generator=g))
            img[:, y0:y0 + side, x0:x0 + side] = 120 + 60 * c
            m = torch.zeros(size, size, dtype=torch.uint8)
            m[y0:y0 + side, x0:x0 + side] = 1
            boxes.append([x0, y0, x0 + side, y0 + side])
            masks.append(m)
        images.append(img)
        targets.append(make_target(boxes, take, (size, size),
                                   masks=torch.stack(masks) if masks else torch.zeros(0, size, size)))
    return SceneSet(images, targets, [f"c{c}" for c in range(len(counts))])


def tiny_scene_context(train: SceneSet, seed: int = 0, epochs: int = 3, head: str = "sigmoid",
                       model: str = "fcos") -> Context:
    counts = train.instance_counts()
    return Context(track="detection", class_names=list(train.class_names), instance_counts=counts,
                   image_counts=train.image_counts(), minority=[c for c, n in enumerate(counts) if n < max(counts)],
                   seed=seed, budget={"epochs": epochs, "batch_size": 4, "lr": 0.01,
                                      "gan": {"steps": 20, "batch_size": 8, "lr": 2.0e-4}},
                   dataset="tiny-scenes", epochs=epochs, data_key={"dataset": "tiny-scenes", "seed": seed},
                   model_info={"name": model, "head": head})


def _tiny_detector(train: SceneSet, name: str):
    from ..tasks.detection.models import build_detector

    torch.manual_seed(0)
    return build_detector(name, num_classes=train.num_classes, in_channels=train.channels, image_size=SIZE,
                          mean=[0.2], std=[0.3])


def _check_scenes(cls: type[Method], prepared, train: SceneSet) -> None:
    name = cls.name
    assert isinstance(prepared, SceneSet), f"{name}: prepare must return a SceneSet"
    assert prepared.class_names == train.class_names, f"{name}: prepare changed the class names"
    assert len(prepared) > 0 and prepared.synthetic.shape == (len(prepared),), f"{name}: bad image flags"
    for img, t in zip(prepared.images, prepared.targets):
        assert img.dtype == torch.uint8 and img.shape[0] == train.channels, f"{name}: prepare changed image dtype/channels"
        boxes = t["boxes"].as_subclass(torch.Tensor)
        H, W = img.shape[1:]
        assert tuple(t["boxes"].canvas_size) == (H, W), f"{name}: boxes' canvas_size differs from the image"
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all(), f"{name}: degenerate box"
        assert (boxes >= 0).all() and (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all(), f"{name}: box outside image"
        assert ((t["labels"] >= 0) & (t["labels"] < train.num_classes)).all(), f"{name}: label out of range"
        n = len(t["labels"])
        assert all(len(t[k]) == n for k in ("area", "occlusion", "difficult", "synthetic")), f"{name}: fields misaligned"
        if "masks" in t:
            assert t["masks"].shape == (n, H, W), f"{name}: masks misaligned"


def image_sampling(cls: type[Method], plan, n: int) -> torch.Tensor | None:
    """A ``sampler`` hook's output over ``n`` images (weights or ``RepeatFactors``) as float64
    factors, checked: one per image, finite, non-negative, not all zero; None stays None."""
    if plan is None:
        return None
    w = plan.factors if isinstance(plan, RepeatFactors) else torch.as_tensor(plan, dtype=torch.float64)
    assert w.shape == (n,), f"{cls.name}: sampler must give one weight or factor per image"
    assert torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0, f"{cls.name}: bad sampler output"
    return w


def _digest(images, targets) -> tuple:
    return (torch.cat([i.reshape(-1) for i in images]).float(),
            torch.cat([t["boxes"].as_subclass(torch.Tensor).reshape(-1) for t in targets] + [torch.zeros(0)]),
            torch.cat([t["labels"] for t in targets] + [torch.zeros(0, dtype=torch.int64)]))


def run_hooks(cls: type[Method], seed: int) -> dict:
    """Every hook of ``cls`` on a tiny imbalanced SceneSet with an FCOS and a Faster R-CNN detector
    (those of the two the method runs with); what must be equal across two runs with one seed."""
    from ..tasks.detection.train import model_targets

    torch.manual_seed(seed)
    train = tiny_sceneset()
    out: dict = {}
    for model_name, head in (("fcos", "sigmoid"), ("faster-rcnn", "softmax")):
        if not cls.supports("detection", model_name):
            continue  # a method restricted to other models (Method.models) is checked with those
        ctx = tiny_scene_context(train, seed=seed, head=head, model=model_name)
        method = cls()
        prepared = method.prepare(train, ctx)
        _check_scenes(cls, prepared, train)
        out[f"{model_name}:prepared"] = _digest(prepared.images, prepared.targets)
        detector = method.adapt_model(_tiny_detector(train, model_name), ctx)
        assert isinstance(detector, torch.nn.Module), f"{cls.name}: adapt_model must return the detector"
        w = image_sampling(cls, method.sampler(prepared, ctx), len(prepared))
        if w is not None:
            out[f"{model_name}:sampler"] = w
        detector.cls_loss = method.criterion(ctx)
        detector.train()
        idx = list(range(min(4, len(prepared))))
        for epoch in range(ctx.epochs):
            ctx.epoch = epoch
            method.on_epoch(epoch, ctx)
            out[f"{model_name}:lr{epoch}"] = scheduled_lr(cls, method, epoch, ctx)
            images = [prepared.images[i].float() / 255.0 for i in idx]
            targets = [prepared.targets[i] for i in idx]
            aug_i, aug_t = method.augment(([i.clone() for i in images], list(targets)), ctx)
            assert len(aug_i) == len(images) and len(aug_t) == len(targets), f"{cls.name}: augment changed the batch size"
            for a, b, t in zip(aug_i, images, aug_t):
                assert a.shape[0] == b.shape[0] and a.dtype == b.dtype, f"{cls.name}: augment changed channels/dtype"
                assert torch.isfinite(a).all(), f"{cls.name}: augment produced non-finite values"
                assert tuple(t["boxes"].canvas_size) == tuple(a.shape[1:]), f"{cls.name}: augment left boxes behind"
            losses = detector(aug_i, model_targets(aug_t, "cpu"))
            loss = sum(losses.values())
            extra = method.adversary(detector, (aug_i, aug_t), ctx)
            if extra is not None:
                loss = loss + extra
            assert loss.ndim == 0 and torch.isfinite(loss), f"{cls.name}: detection loss must be a finite scalar"
            loss.backward()
            out[f"{model_name}:aug{epoch}"] = _digest(aug_i, aug_t)
            out[f"{model_name}:loss{epoch}"] = loss.detach()
        json.dumps(ctx.record)  # what a method notes must be JSON-serialisable
    return out
