"""The domain feature extractor for FID / KID / GAN-test of generated samples.

Reproduces the "domain classifier" protocol of the sample-quality literature without
downloaded weights: FID/KID are computed on the features of a classifier trained on the
*balanced* source split (in place of ImageNet Inception-v3), and the same classifier scores
generated samples for GAN-test (Shmelkov et al. 2018; CAS, train on generated and test on real,
is ``cas.py``), and is CAS's real-data reference.  Here it is
a ``small-cnn`` (128-d pooled features) trained with the classification trainer and
cross-entropy, cached on disk so every GAN cell of a dataset reuses one extractor.

Photometric jitter (the suite's decision): half of each training batch gets a random contrast
scale, brightness offset and pixel noise (``photometric_jitter``). Without it the extractor
learns that a background is exactly 0: on the real MNIST split a +20/255 offset of every pixel
took its test accuracy from 0.99 to 0.17 (nearly everything became an "8"), so CAS and FID of a
generator whose backgrounds are slightly grey measured that grey, not the digits. With it the
features keep the class content and still see the offset (FID still charges it, less extremely).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from ..benchmarks.contract import Context, Method
from ..data_recipes.imageset import ImageSet
from ..tasks.classification import train as trainer  # looked up at call time (tests patch fit)
from ..tasks.classification.models import build_model
from .cache_lock import cache_lock

MODEL = "small-cnn"
# Bump when the architecture, the budget or the training loop changes: old caches are ignored.
CODE_VERSION = "domain-classifier-v2"
JITTER = {"p": 0.5, "contrast": (0.6, 1.0), "offset": (-0.15, 0.25), "noise_std": (0.0, 0.08)}


def photometric_jitter(x: torch.Tensor, gen: torch.Generator, p: float = JITTER["p"]) -> torch.Tensor:
    """Each image of ``x`` (float (B, C, H, W) in [0, 1]) with probability ``p`` becomes
    ``clamp(a * x + b + s * N(0, 1), 0, 1)``, with a contrast ``a``, an offset ``b`` and a noise
    std ``s`` drawn uniformly per image from ``JITTER``; the others are returned unchanged.
    Random numbers come from the CPU generator ``gen`` (same stream on any device)."""
    n, shape = len(x), (-1, 1, 1, 1)

    def uniform(lo_hi):
        lo, hi = lo_hi
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).view(shape)

    apply = (torch.rand(n, generator=gen) < p).view(shape)
    a, b, s = uniform(JITTER["contrast"]), uniform(JITTER["offset"]), uniform(JITTER["noise_std"])
    noise = torch.randn(x.shape, generator=gen) * s
    jittered = (x * a.to(x.device) + b.to(x.device) + noise.to(x.device)).clamp_(0.0, 1.0)
    return torch.where(apply.to(x.device), jittered, x)


class DomainClassifierMethod(Method):
    """Cross-entropy with ``photometric_jitter`` on each batch (see the module docstring)."""

    name = "domain-classifier"
    tracks = ("classification",)
    summary = "cross-entropy training of the FID/KID/GAN-test feature extractor, with photometric jitter"

    _gen: torch.Generator | None = None

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        if epoch == 0 or self._gen is None:
            self._gen = ctx.generator("domain-photometric-jitter")

    def augment(self, batch, ctx: Context):
        x, y = batch
        return photometric_jitter(x, self._gen), y


def budget(epochs: int) -> dict:
    """The training budget of the domain classifier (SGD, one lr step at 80 % of training)."""
    return {"epochs": int(epochs), "batch_size": 64, "lr": 0.05, "momentum": 0.9,
            "weight_decay": 5e-4, "warmup_epochs": 0, "lr_steps": {int(0.8 * epochs): 0.1}}


def cache_key(fingerprint: str, epochs: int, seed: int, image_shape, num_classes: int) -> str:
    """sha256 of everything that determines the trained weights."""
    blob = json.dumps({"fingerprint": str(fingerprint), "epochs": int(epochs), "seed": int(seed),
                       "image_shape": [int(s) for s in image_shape], "num_classes": int(num_classes),
                       "model": MODEL, "version": CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _build(train: ImageSet, mean, std) -> torch.nn.Module:
    C, H, W = train.image_shape
    return build_model(MODEL, in_channels=C, num_classes=train.num_classes, image_size=(H, W),
                       mean=mean, std=std)


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def domain_classifier(train: ImageSet, *, device, cache_dir: Path | None, epochs: int = 15,
                      seed: int = 0, fingerprint: str) -> tuple[torch.nn.Module, bool]:
    """A ``small-cnn`` trained on ``train`` (the balanced source split), in eval mode on ``device``.

    Returns ``(model, hit)``; ``hit`` is True when the weights came from
    ``cache_dir/features/<key>.pt`` (no training).  ``fingerprint`` identifies the data (e.g. the
    source's ``info["fingerprint"]``); ``cache_dir=None`` disables the cache.
    """
    device = torch.device(device)
    if len(train) < 2 or train.num_classes < 2:
        raise ValueError("the domain classifier needs at least 2 items and 2 classes")
    path = None
    if cache_dir is not None:
        key = cache_key(fingerprint, epochs, seed, train.image_shape, train.num_classes)
        path = Path(cache_dir) / "features" / f"{key}.pt"
    with cache_lock(path):  # parallel workers: one trains, the others wait and load it
        if path is not None and path.exists():
            model = _load(path, train)
            if model is not None:
                return model.to(device).eval(), True
        model = _train(train, device=device, epochs=epochs, seed=seed, fingerprint=fingerprint)
        if path is not None:
            _save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return model, False


def _load(path: Path, train: ImageSet) -> torch.nn.Module | None:
    """The cached extractor, or None when the file is truncated or stale (it is then retrained)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = _build(train, [0.5] * train.image_shape[0], [0.25] * train.image_shape[0])  # buffers from state
        model.load_state_dict(state)
        return model
    except Exception:  # noqa: BLE001
        return None


def _train(train: ImageSet, *, device, epochs: int, seed: int, fingerprint: str) -> torch.nn.Module:
    real = train.images.float().div(255.0)
    mean = real.mean(dim=(0, 2, 3)).tolist()
    std = real.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    ctx = Context(track="classification", class_names=list(train.class_names), instance_counts=train.counts(),
                  minority=[], seed=int(seed), device=device, budget=budget(epochs),
                  dataset=str(fingerprint), quiet=True)
    torch.manual_seed(int(seed))
    model = _build(train, mean, std).to(device)
    trainer.fit(model, train, DomainClassifierMethod(), ctx, progress=False)
    return model.eval()
