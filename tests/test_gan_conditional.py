"""The DCGAN-family oversamplers: per-class DCGAN, cGAN, ACGAN, WGAN-GP (``gans/``).

Fast (smoke GAN budget, tiny sets); no test of image quality here.
"""
from __future__ import annotations

import math

import pytest
import torch

from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.plugins import METHODS
from imbench.gans.acgan import ACGAN
from imbench.gans.cgan import CGAN
from imbench.gans.dcgan import DCGAN
from imbench.gans.nets import Discriminator, RealBatches, layout
from imbench.gans.wgan_gp import WGANGP, gradient_penalty
from imbench.testing import tiny_context, tiny_imageset

SMOKE = {"steps": 30, "batch_size": 32, "lr": 2e-4}
CLASSES = {"dcgan": DCGAN, "cgan": CGAN, "acgan": ACGAN, "wgan-gp": WGANGP}
NAMES = list(CLASSES)
MINORITY_LABELS = torch.tensor([1, 2, 2, 1, 2, 1, 1])  # dcgan has generators for minority classes only



def _ctx(train, seed=0, budget=SMOKE):
    return tiny_context(train, seed=seed, gan=budget)


def _fit(name, train, seed=0, budget=SMOKE, **params):
    """build + fit seeded as ``GenerativeOversampler._generator`` does."""
    method = CLASSES[name](**params)
    ctx = _ctx(train, seed, budget)
    torch.manual_seed(ctx._seed_for(f"{method.name}-init"))
    generator = method.build(train.image_shape, train.num_classes)
    torch.manual_seed(ctx._seed_for(f"{method.name}-fit"))
    method.fit(generator, train, ctx, dict(budget))
    return method, generator, ctx


def _sample(method, generator, train, ctx, labels=MINORITY_LABELS):
    generator.eval()
    with torch.no_grad():
        return method.sample(generator, labels, train, ctx, ctx.generator("test-sample"))


def test_registered_with_metadata():
    for name, cls in CLASSES.items():
        assert METHODS.get(name) is cls
        assert cls.family == "gan" and cls.summary and cls.reference
        assert cls.defaults["blend"] == "full"
    assert WGANGP.defaults["n_critic"] == 5 and WGANGP.defaults["gp_lambda"] == 10.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (1, 28, 28), (3, 32, 32), (1, 32, 32)])
def test_build_any_supported_shape(name, shape):
    method = CLASSES[name]()
    module = method.build(shape, 3)
    assert isinstance(module, torch.nn.Module)
    again = method.build(shape, 3)  # the cache rebuilds with build and loads the state dict
    again.load_state_dict(module.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_size_is_a_usage_error(name):
    with pytest.raises(UsageError, match="supported"):
        CLASSES[name]().build((1, 9, 9), 3)
    with pytest.raises(UsageError, match="supported"):
        layout((3, 4, 4))


def test_layout_starts_from_4_or_7():
    assert layout((1, 8, 8)) == (4, 4, 1)
    assert layout((1, 28, 28)) == (7, 7, 2)
    assert layout((3, 32, 32)) == (4, 4, 3)


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_are_usage_errors(name):
    with pytest.raises(UsageError):
        CLASSES[name](width=0)
    with pytest.raises(UsageError):
        CLASSES[name](blend="2")
    if name != "dcgan":
        with pytest.raises(UsageError, match="sampling"):
            CLASSES[name](sampling="uniform")
    if name == "wgan-gp":
        with pytest.raises(UsageError, match="n_critic"):
            WGANGP(n_critic=0)


@pytest.mark.parametrize("name", NAMES)
def test_fit_then_sample_8px_finite_losses(name, monkeypatch):
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    method = CLASSES[name]()
    seen = []
    check = method.check_finite

    def record(label, step, **losses):
        seen.append({k: float(v) for k, v in losses.items()})
        check(label, step, **losses)

    monkeypatch.setattr(method, "check_finite", record)
    ctx = _ctx(train)
    torch.manual_seed(0)
    generator = method.build(train.image_shape, train.num_classes)
    method.fit(generator, train, ctx, dict(SMOKE))
    # every family counts its budget in generator updates: 30 here (dcgan: 30 for each of its
    # 2 minority classes; wgan-gp: 30, each after n_critic = 5 critic updates)
    expected = {"dcgan": 2 * 30}.get(name, 30)
    assert len(seen) == expected
    assert all(math.isfinite(v) for losses in seen for v in losses.values())
    assert set(seen[0]) == {"d", "g"}
    images = _sample(method, generator, train, ctx)
    assert images.dtype == torch.uint8 and images.shape == (len(MINORITY_LABELS), 1, 8, 8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_fit_then_sample_larger_shapes(name, shape):
    train = tiny_imageset(counts=(12, 6, 3), shape=shape)
    params = {}
    budget = {"steps": 5, "batch_size": 8, "lr": 2e-4}
    method, generator, ctx = _fit(name, train, budget=budget, **params)
    images = _sample(method, generator, train, ctx)
    assert images.dtype == torch.uint8 and images.shape == (len(MINORITY_LABELS), *shape)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_samples_other_seed_differs(name):
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    first = _sample(*_fit(name, train, seed=0)[:2], train, _ctx(train, 0))
    second = _sample(*_fit(name, train, seed=0)[:2], train, _ctx(train, 0))
    other = _sample(*_fit(name, train, seed=1)[:2], train, _ctx(train, 1))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", NAMES)
def test_prepare_fills_every_class_to_the_largest(name):
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    ctx = _ctx(train)
    out = CLASSES[name]().prepare(train, ctx)
    assert out.counts() == [24, 24, 24]
    assert out.images.dtype == torch.uint8 and out.image_shape == train.image_shape
    assert not out.synthetic[:len(train)].any() and out.synthetic[len(train):].all()
    assert torch.equal(out.images[:len(train)], train.images)
    assert out.labels[len(train):].tolist() == [1] * 16 + [2] * 21
    assert ctx.record["generator_cache"] == "off"
    assert ctx.record["synthetic_per_class"] == [0, 16, 21]


def test_dcgan_trains_a_class_of_two_images():
    train = tiny_imageset(counts=(12, 2), shape=(1, 8, 8))
    out = DCGAN().prepare(train, _ctx(train))
    assert out.counts() == [12, 12] and int(out.synthetic.sum()) == 10


def test_dcgan_leaves_majority_generator_untrained():
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    method = DCGAN()
    ctx = _ctx(train)
    torch.manual_seed(0)
    generator = method.build(train.image_shape, train.num_classes)
    before = [{k: v.clone() for k, v in net.state_dict().items()} for net in generator.nets]
    method.fit(generator, train, ctx, dict(SMOKE))
    after = [net.state_dict() for net in generator.nets]
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])  # majority: still at init
    for c in (1, 2):
        assert not all(torch.equal(before[c][k], after[c][k]) for k in before[c])
    assert generator.trained.tolist() == [False, True, True]
    assert ctx.record["gan_steps_per_class"] == 30  # the budget's steps for each trained class
    with pytest.raises(ValueError, match="class 0"):
        _sample(method, generator, train, ctx, torch.tensor([0, 1]))


def test_gradient_penalty_matches_direct_autograd():
    torch.manual_seed(0)
    critic = Discriminator((1, 8, 8), 3, width=16, norm="layer", conditioning="projection")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    real, fake = torch.rand(6, 1, 8, 8) * 2 - 1, torch.rand(6, 1, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    gp = gradient_penalty(critic, real, fake, labels, torch.Generator().manual_seed(3))

    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    terms = []
    for i in range(6):  # one item at a time: also checks that the critic does not mix items
        x = (eps[i] * real[i:i + 1] + (1 - eps[i]) * fake[i:i + 1]).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x, labels[i:i + 1])[0].sum(), x)
        terms.append((grad.flatten().norm(2) - 1) ** 2)
    assert torch.allclose(gp, torch.stack(terms).mean(), rtol=1e-5, atol=1e-6)
    gp.backward()  # the penalty keeps its graph: it trains the critic
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_real_batches_balanced_sampling():
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    gen = torch.Generator().manual_seed(0)
    data = torch.cat([RealBatches(train, 64, gen, "cpu", "data")()[1] for _ in range(50)])
    balanced = torch.cat([RealBatches(train, 64, gen, "cpu", "balanced")()[1] for _ in range(50)])
    share_data = torch.bincount(data, minlength=3).float() / len(data)
    share_bal = torch.bincount(balanced, minlength=3).float() / len(balanced)
    assert abs(float(share_data[0]) - 24 / 35) < 0.05
    assert (share_bal - 1 / 3).abs().max() < 0.05
    x, _ = RealBatches(train, 8, gen, "cpu")()
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1


def test_cgan_balanced_sampling_and_channel_conditioning_run():
    train = tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))
    budget = {"steps": 4, "batch_size": 8, "lr": 2e-4}
    method, generator, ctx = _fit("cgan", train, budget=budget, sampling="balanced", conditioning="channel")
    assert _sample(method, generator, train, ctx).shape == (len(MINORITY_LABELS), 1, 8, 8)
