"""The classification contract checks: a tiny imbalanced ImageSet, its Context, every hook."""
from __future__ import annotations

import json

import torch

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import DeferredSampling, RepeatFactors
from ..data_recipes.imageset import ImageSet
from ..tasks.schedule import sampling_plan


def tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8), seed: int = 0) -> ImageSet:
    """A small imbalanced set: class c is a noisy blob at a class-specific position."""
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    C, H, W = shape
    for c, n in enumerate(counts):
        base = torch.zeros(C, H, W)
        base[:, (c * 3) % H:(c * 3) % H + H // 2, (c * 5) % W:(c * 5) % W + W // 2] = 200.0
        noise = torch.rand((n, C, H, W), generator=g) * 55.0
        images.append((base + noise).clamp(0, 255).to(torch.uint8))
        labels += [c] * n
    return ImageSet(torch.cat(images), torch.tensor(labels), [f"c{c}" for c in range(len(counts))])


def tiny_context(train: ImageSet, seed: int = 0, epochs: int = 4, gan: dict | None = None) -> Context:
    """A Context for ``train`` with a tiny budget (``gan`` replaces the default GAN budget); no
    cache, no source (so generative methods skip the sample-quality step)."""
    counts = train.counts()
    gan = dict(gan) if gan is not None else {"steps": 100, "batch_size": 16, "lr": 2.0e-4, "feature_epochs": 1}
    return Context(track="classification", class_names=list(train.class_names), instance_counts=counts,
                   minority=[c for c, n in enumerate(counts) if n < max(counts)], seed=seed,
                   budget={"epochs": epochs, "batch_size": 16, "lr": 0.05, "gan": gan},
                   dataset="tiny", epochs=epochs, data_key={"dataset": "tiny", "seed": seed})


def _tiny_model(train: ImageSet) -> torch.nn.Module:
    from ..tasks.classification.models import build_model

    C, H, _ = train.image_shape
    torch.manual_seed(0)
    return build_model("small-cnn", in_channels=C, num_classes=train.num_classes, image_size=H,
                       mean=[0.5] * C, std=[0.25] * C)


def run_hooks(cls: type[Method], seed: int) -> dict:
    """Every hook of ``cls`` on a tiny imbalanced ImageSet; what must be equal across two runs."""
    torch.manual_seed(seed)
    train = tiny_imageset(seed=0)
    ctx = tiny_context(train, seed=seed)
    method = cls()
    out: dict = {}
    prepared = method.prepare(train, ctx)
    assert isinstance(prepared, ImageSet), f"{cls.name}: prepare must return an ImageSet"
    assert prepared.image_shape == train.image_shape, f"{cls.name}: prepare changed the image shape"
    assert prepared.images.dtype == torch.uint8, f"{cls.name}: prepare must keep uint8 images"
    assert prepared.class_names == train.class_names, f"{cls.name}: prepare changed the class names"
    assert len(prepared) > 0 and int(prepared.labels.min()) >= 0, f"{cls.name}: prepare gave no items or bad labels"
    assert int(prepared.labels.max()) < train.num_classes, f"{cls.name}: prepare gave out-of-range labels"
    assert prepared.synthetic.shape == prepared.labels.shape, f"{cls.name}: synthetic flags misaligned"
    out["prepared"] = (prepared.images.clone(), prepared.labels.clone())
    model = method.adapt_model(_tiny_model(train), ctx)
    assert isinstance(model, torch.nn.Module), f"{cls.name}: adapt_model must return a module"
    weights = method.sampler(prepared, ctx)
    if weights is not None:
        out["weights"] = _sampling_tensors(sampling_plan(weights, len(prepared), cls.name))
    loss_fn = method.criterion(ctx)
    x = prepared.images[:16].float() / 255.0
    y = prepared.labels[:16]
    for epoch in range(ctx.epochs):
        ctx.epoch = epoch
        method.on_epoch(epoch, ctx)
        out[f"lr{epoch}"] = scheduled_lr(cls, method, epoch, ctx)
        xa, ya = method.augment((x.clone(), y.clone()), ctx)
        assert xa.shape == x.shape and xa.dtype == x.dtype, f"{cls.name}: augment changed batch shape/dtype"
        if isinstance(ya, torch.Tensor):
            assert torch.equal(ya, y), f"{cls.name}: augment changed the labels"
        else:  # a label object its own criterion reads (mixup's MixedLabels): one entry per item
            assert len(ya) == len(y), f"{cls.name}: augment's labels have {len(ya)} entries for {len(y)} items"
        assert torch.isfinite(xa).all(), f"{cls.name}: augment produced non-finite values"
        logits = model(xa)
        assert logits.shape == (len(y), train.num_classes), f"{cls.name}: model output shape changed"
        loss = (loss_fn or torch.nn.functional.cross_entropy)(logits, ya)
        extra = method.adversary(model, (xa, ya), ctx)
        if extra is not None:
            loss = loss + extra
        assert loss.ndim == 0 and torch.isfinite(loss), f"{cls.name}: loss must be a finite scalar"
        loss.backward()
        out[f"aug{epoch}"] = xa.detach()
        out[f"loss{epoch}"] = loss.detach()
    model = method.second_stage(model, ctx)
    assert isinstance(model, torch.nn.Module), f"{cls.name}: second_stage must return a module"
    model.eval()
    with torch.no_grad():
        logits = model(x)
        adjusted = method.adjust_logits(logits, ctx)
    assert adjusted.shape == logits.shape and torch.isfinite(adjusted).all(), f"{cls.name}: adjust_logits changed the shape or gave non-finite logits"
    out["evaluated"] = adjusted
    json.dumps(ctx.record)  # what a method notes must be JSON-serialisable
    return out


def scheduled_lr(cls: type[Method], method: Method, epoch: int, ctx: Context) -> torch.Tensor:
    """The method's ``lr_schedule`` at the first step of ``epoch`` (given the budget's ``lr``),
    checked to be a finite learning rate >= 0."""
    lr = method.lr_schedule(float(ctx.budget["lr"]), epoch, 0, ctx)
    assert isinstance(lr, (int, float)) and lr >= 0 and lr == lr and lr != float("inf"), \
        f"{cls.name}: lr_schedule must return a finite learning rate >= 0, got {lr!r}"
    return torch.tensor(float(lr))


def _sampling_tensors(plan):
    """A checked sampling plan as tensors to compare between runs."""
    if isinstance(plan, DeferredSampling):
        return tuple(torch.empty(0) if p is None else _sampling_tensors(p) for p in (plan.before, plan.after))
    return plan.factors if isinstance(plan, RepeatFactors) else plan
