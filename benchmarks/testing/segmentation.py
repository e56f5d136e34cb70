"""The segmentation contract checks: a tiny imbalanced SegSet (with void pixels), its Context, every
hook on the small U-Net (and, for a method that changes the model or adds an adversarial term,
torchvision's LR-ASPP too)."""
from __future__ import annotations

import json

import torch

from ..benchmarks.contract import Context, Method
from ..data_recipes.segset import SegSet
from .classification import scheduled_lr
from .detection import image_sampling

SIZE = 32
VOID = 255


def tiny_segset(images_per_class=(10, 3), size: int = SIZE, seed: int = 0) -> SegSet:
    """A small imbalanced label-map set: class 0 is background; ``images_per_class[k]`` images hold
    one square of class ``k + 1`` (a class-specific brightness and size); every image has a 2-pixel
    void border on its right (label 255)."""
    g = torch.Generator().manual_seed(seed)
    classes = [k + 1 for k, n in enumerate(images_per_class) for _ in range(n)]
    classes = [classes[i] for i in torch.randperm(len(classes), generator=g).tolist()]
    images, masks = [], []
    for c in classes:
        img = (torch.rand((1, size, size), generator=g) * 30).to(torch.uint8)
        m = torch.zeros(size, size, dtype=torch.int64)
        side = 6 + 3 * c
        y0, x0 = (int(v) for v in torch.randint(0, size - side - 2, (2,), generator=g))
        img[:, y0:y0 + side, x0:x0 + side] = 100 + 60 * c
        m[y0:y0 + side, x0:x0 + side] = c
        m[:, -2:] = VOID
        images.append(img)
        masks.append(m)
    return SegSet(images, masks, ["background"] + [f"c{k + 1}" for k in range(len(images_per_class))], VOID)


def tiny_seg_context(train: SegSet, seed: int = 0, epochs: int = 2, model: str = "unet") -> Context:
    counts = train.pixel_counts()
    fg = counts[1:]
    return Context(track="segmentation", class_names=list(train.class_names), instance_counts=counts,
                   image_counts=train.image_counts(), minority=[c + 1 for c, n in enumerate(fg) if n < max(fg)],
                   seed=seed, budget={"epochs": epochs, "batch_size": 4, "lr": 3e-3, "optimizer": "adam",
                                      "gan": {"steps": 20, "batch_size": 8, "lr": 2.0e-4, "feature_epochs": 1}},
                   dataset="tiny-segset", epochs=epochs, data_key={"dataset": "tiny-segset", "seed": seed},
                   model_info={"name": model}, ignore_index=VOID)


def _tiny_segmenter(train: SegSet, name: str):
    from ..tasks.segmentation.models import build_segmenter

    torch.manual_seed(0)
    return build_segmenter(name, num_classes=train.num_classes, in_channels=1, mean=[0.2], std=[0.3])


def _check_segset(cls: type[Method], prepared, train: SegSet) -> None:
    name = cls.name
    assert isinstance(prepared, SegSet), f"{name}: prepare must return a SegSet"
    assert prepared.class_names == train.class_names, f"{name}: prepare changed the class names"
    assert prepared.ignore_index == train.ignore_index, f"{name}: prepare changed the void label"
    assert len(prepared) > 0 and prepared.synthetic.shape == (len(prepared),), f"{name}: bad image flags"
    for img, m in zip(prepared.images, prepared.masks):
        assert img.shape[0] == train.images[0].shape[0], f"{name}: prepare changed the channels"
        ok = ((m >= 0) & (m < train.num_classes)) | (m == train.ignore_index)
        assert ok.all(), f"{name}: a label outside the classes and void"


def run_hooks(cls: type[Method], seed: int) -> dict:
    """Every hook of ``cls`` on a tiny imbalanced SegSet; what must be equal across two runs."""
    from ..tasks.segmentation.train import collate, pixel_ce

    torch.manual_seed(seed)
    train = tiny_segset()
    out: dict = {}
    models = ["unet"] + (["lraspp-mobilenet"] if {"adapt_model", "adversary"} & set(cls.hooks()) else [])
    for model_name in models:
        ctx = tiny_seg_context(train, seed=seed, model=model_name)
        method = cls()
        prepared = method.prepare(train, ctx)
        _check_segset(cls, prepared, train)
        out[f"{model_name}:prepared"] = (torch.cat([i.reshape(-1) for i in prepared.images]),
                                         torch.cat([m.reshape(-1) for m in prepared.masks]))
        model = method.adapt_model(_tiny_segmenter(train, model_name), ctx)
        assert isinstance(model, torch.nn.Module), f"{cls.name}: adapt_model must return the segmenter"
        w = image_sampling(cls, method.sampler(prepared, ctx), len(prepared))
        if w is not None:
            out[f"{model_name}:sampler"] = w
        loss_fn = method.criterion(ctx) or pixel_ce(VOID)
        model.train()
        idx = list(range(min(4, len(prepared))))
        for epoch in range(ctx.epochs):
            ctx.epoch = epoch
            method.on_epoch(epoch, ctx)
            out[f"lr{epoch}"] = scheduled_lr(cls, method, epoch, ctx)
            x, y = collate([prepared.images[i] for i in idx], [prepared.masks[i] for i in idx], VOID, "cpu")
            ax, ay = method.augment((x.clone(), y.clone()), ctx)
            assert ax.shape == x.shape and ax.dtype == x.dtype, f"{cls.name}: augment changed the images' shape/dtype"
            assert ay.shape == y.shape and ay.dtype == torch.int64, f"{cls.name}: augment changed the labels' shape/dtype"
            assert torch.isfinite(ax).all(), f"{cls.name}: augment produced non-finite values"
            logits = model(ax)
            assert logits.shape == (len(idx), train.num_classes, SIZE, SIZE), f"{cls.name}: segmenter output shape"
            loss = loss_fn(logits, ay)
            extra = method.adversary(model, (ax, ay), ctx)
            if extra is not None:
                loss = loss + extra
            assert loss.ndim == 0 and torch.isfinite(loss), f"{cls.name}: segmentation loss must be a finite scalar"
            loss.backward()
            out[f"{model_name}:aug{epoch}"] = (ax, ay)
            out[f"{model_name}:loss{epoch}"] = loss.detach()
        json.dumps(ctx.record)
    return out
