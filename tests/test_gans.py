"""Every registered generative method: counts, shapes, labels, cache reuse, determinism."""
from __future__ import annotations

import pytest
import torch

from imbench.benchmarks.plugins import METHODS, load_methods
from imbench.testing import tiny_context, tiny_imageset

load_methods()
GENERATIVE = sorted(n for n in METHODS if METHODS.get(n).family == "gan" and METHODS.origin(n) == "builtin"
                    and METHODS.get(n).supports("classification"))


def _ctx(train, cache_dir=None, seed=0):
    ctx = tiny_context(train, seed=seed)
    ctx.budget["gan"] = {"steps": 100, "batch_size": 16, "lr": 2.0e-4}
    ctx.cache_dir = cache_dir
    return ctx


def test_every_survey_family_is_registered():
    assert set(GENERATIVE) >= {"dcgan", "cgan", "acgan", "wgan-gp", "bagan", "cyclegan", "deepsmote", "cvae"}


@pytest.mark.parametrize("name", GENERATIVE)
def test_generated_items_and_cache_reuse(name, tmp_path, monkeypatch):
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    cls = METHODS.get(name)
    ctx = _ctx(train, tmp_path)
    out = cls().prepare(train, ctx)
    assert ctx.record["generator_cache"] == "miss" and ctx.record["generator_train_s"] > 0
    assert out.counts() == [24, 24, 24]
    assert out.images.dtype == torch.uint8 and out.image_shape == train.image_shape
    assert torch.equal(out.images[: len(train)], train.images)
    new = out.synthetic.nonzero().flatten()
    assert torch.equal(new, torch.arange(len(train), len(out)))
    assert out.labels[new].tolist() == [1] * 16 + [2] * 21

    monkeypatch.setattr(cls, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained on a hit")))
    ctx2 = _ctx(train, tmp_path)
    again = cls().prepare(train, ctx2)
    assert ctx2.record["generator_cache"] == "hit"
    assert torch.equal(again.images, out.images)


@pytest.mark.parametrize("name", GENERATIVE)
def test_blend_fraction_and_seed(name):
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    half = METHODS.get(name)(blend="0.5").prepare(train, _ctx(train))
    assert half.counts() == [24, 8 + 8, 3 + 10]
    other = METHODS.get(name)(blend="0.5").prepare(train, _ctx(train, seed=1))
    assert not torch.equal(half.images, other.images)
