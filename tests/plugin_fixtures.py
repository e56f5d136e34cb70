"""Methods used by the tests as plugins (loaded with --plugin tests.plugin_fixtures:...)."""
from __future__ import annotations

import torch

from imbench.benchmarks.contract import Method


class NanLoss(Method):
    name = "nan-loss"
    tracks = ("classification",)
    summary = "a loss that diverges (for the failure-handling test)"
    reference = "test fixture"

    def criterion(self, ctx):
        return lambda logits, y: logits.sum() * torch.tensor(float("nan"))


class Halve(Method):
    """Keeps every other training item: a complete, tiny data-level plugin."""

    name = "halve"
    tracks = ("classification",)
    summary = "keep every other training item"
    reference = "test fixture"

    def prepare(self, train, ctx):
        return train.subset(range(0, len(train), 2))


from imbench.gans.base import GenerativeOversampler  # noqa: E402


class _Moments(torch.nn.Module):
    def __init__(self, shape, num_classes):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_classes, *shape))
        self.register_buffer("std", torch.zeros(num_classes, *shape))
        self.register_buffer("fits", torch.zeros(()))


class NoisyMeans(GenerativeOversampler):
    """A deliberately simple generator (per-class pixel mean + Gaussian noise of the class's
    per-pixel std) that exercises the generative machinery quickly."""

    name = "noisy-means"
    summary = "per-class Gaussian pixel model (test fixture for the generative machinery)"
    reference = "test fixture"
    defaults = {**GenerativeOversampler.defaults, "constant": False}

    def build(self, image_shape, num_classes):
        return _Moments(image_shape, num_classes)

    def fit(self, generator, train, ctx, budget):
        x = train.images.float().to(ctx.device)
        for c in range(train.num_classes):
            xc = x[train.labels.to(ctx.device) == c]
            generator.mean[c] = xc.mean(0)
            generator.std[c] = xc.std(0) if len(xc) > 1 else torch.full_like(xc[0], 20.0)
        generator.fits += 1

    def sample(self, generator, labels, train, ctx, gen):
        noise = torch.randn((len(labels), *train.image_shape), generator=gen).to(ctx.device)
        labels = labels.to(ctx.device)
        scale = 0.0 if self.params["constant"] else 1.0
        x = generator.mean[labels] + scale * noise * generator.std[labels]
        return x.clamp(0, 255).round().to(torch.uint8)


class Flaky(Method):
    """Fails while the environment variable IMBENCH_TEST_FLAKY is set (for the retry test)."""

    name = "flaky"
    tracks = ("classification",)
    summary = "fails while IMBENCH_TEST_FLAKY is set"
    reference = "test fixture"

    def prepare(self, train, ctx):
        import os

        if os.environ.get("IMBENCH_TEST_FLAKY"):
            raise RuntimeError("flaky failure")
        return train


class Sleepy(Method):
    """erm that first sleeps: keeps a cell running long enough to kill its run mid-cell."""

    name = "sleepy"
    tracks = ("classification",)
    summary = "erm after a pause (lifecycle tests)"
    reference = "test fixture"
    defaults = {"seconds": 2.0}

    def prepare(self, train, ctx):
        import time

        time.sleep(self.params["seconds"])
        return train


class Crash(Method):
    """Kills the process that runs it (a worker lost to the OOM killer, say), noting each try
    (seed, pid) as a line of the file ``log``."""

    name = "crash"
    tracks = ("classification",)
    summary = "kills its own worker process (executor tests)"
    reference = "test fixture"
    defaults = {"log": ""}

    def prepare(self, train, ctx):
        import os

        with open(self.params["log"], "a") as fh:
            fh.write(f"{ctx.seed} {os.getpid()}\n")
        os._exit(1)
