"""Methods used by the tests as plugins (loaded with --plugin tests.plugin_fixtures:...)."""
from __future__ import annotations

import torch

from imbench.benchmarks.method import Method


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
