"""Tests of the CycleGAN-style majority->minority translation oversampler (imbench.gans.cyclegan)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.plugins import METHODS
from imbench.gans.cyclegan import (CycleGANOversampler, CycleTranslatorPair, cycle_loss, generator_losses,
                                   source_classes)
from imbench.testing import tiny_context, tiny_imageset

SMOKE = {"steps": 30, "batch_size": 32, "lr": 2e-4}
COUNTS = (24, 8, 3)



def make(shape=(1, 8, 8), counts=COUNTS, seed=0, budget=SMOKE):
    train = tiny_imageset(counts=counts, shape=shape)
    ctx = tiny_context(train, seed=seed)
    ctx.budget = {"gan": dict(budget)}
    return train, ctx


def fitted(train, ctx, budget=SMOKE, **params):
    """Build and fit the way GenerativeOversampler._generator does (seeded init, seeded fit)."""
    method = CycleGANOversampler(**params)
    torch.manual_seed(ctx._seed_for("cyclegan-init"))
    net = method.build(train.image_shape, train.num_classes)
    torch.manual_seed(ctx._seed_for("cyclegan-fit"))
    net.train()
    method.fit(net, train, ctx, dict(budget))
    net.eval()
    return method, net


class IdentityTranslator(nn.Module):
    """Stands in for G: returns its input and records the classes it was asked for."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x, c):
        self.seen.append(c.clone())
        return x


def test_registered_with_metadata():
    assert METHODS.get("cyclegan") is CycleGANOversampler
    m = CycleGANOversampler()
    assert m.family == "gan" and "classification" in m.tracks
    assert m.params == {"blend": "full", "source": "largest", "lambda_cycle": 10.0, "lambda_id": 0.5,
                        "width": 32, "res_blocks": 2}
    assert "Zhu" in m.reference and m.summary


@pytest.mark.parametrize("params", [{"source": "smallest"}, {"lambda_cycle": -1.0}, {"lambda_id": -0.1},
                                    {"width": 2}, {"res_blocks": -1}, {"blend": "2"}])
def test_bad_params_raise(params):
    with pytest.raises(UsageError):
        CycleGANOversampler(**params)


def test_text_params_are_coerced():
    m = CycleGANOversampler(lambda_cycle="5", lambda_id="0", width="16", res_blocks="1", source="all-majority")
    assert m.params["lambda_cycle"] == 5.0 and m.params["lambda_id"] == 0.0
    assert m.params["width"] == 16 and m.params["res_blocks"] == 1


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (1, 16, 16), (1, 28, 28), (3, 28, 28), (3, 32, 32),
                                   (1, 15, 15)])
@pytest.mark.parametrize("num_classes", [3, 10])
def test_build_shapes(shape, num_classes):
    method = CycleGANOversampler()
    torch.manual_seed(0)
    net = method.build(shape, num_classes)
    assert isinstance(net, CycleTranslatorPair)
    x = torch.rand(5, *shape)
    c = torch.arange(5) % num_classes
    for translator in (net.G, net.F):
        with torch.no_grad():
            y = translator(x, c)
        assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    d_t, d_s = method.discriminators(shape, num_classes)
    pt, ps = d_t(x, c), d_s(x)
    assert pt.shape == ps.shape and pt.shape[:2] == (5, 1)
    assert pt.shape[-1] >= 2 and pt.shape[-2] >= 2  # at least a 2x2 patch map (8 px)
    # the structure depends only on (image_shape, num_classes): a rebuilt module takes the state
    torch.manual_seed(1)
    other = method.build(shape, num_classes)
    other.load_state_dict(net.state_dict())
    net.eval(), other.eval()
    assert torch.equal(other.G(x, c), net.G(x, c))


def test_source_classes():
    assert source_classes([24, 8, 3], "largest") == [0]
    assert source_classes([5, 24, 24, 3], "largest") == [1, 2]
    assert source_classes([24, 8, 3], "all-majority") == [0, 1]
    assert source_classes([40, 30, 20, 10], "all-majority") == [0, 1]  # median 25
    assert source_classes([10, 10, 10], "all-majority") == [0, 1, 2]


def test_fit_and_sample_uint8_in_label_order():
    train, ctx = make()
    method, net = fitted(train, ctx)
    assert net.source_mask.tolist() == [True, False, False]
    labels = torch.tensor([2, 1, 2, 0, 1, 2])
    with torch.no_grad():
        out = method.sample(net, labels, train, ctx, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == (6, 1, 8, 8)
    assert ctx.record["source_classes"] == [0]
    # label order: the k-th sample is G(source_k, labels[k]); translating one at a time agrees
    pick = torch.nonzero(train.labels == 0).flatten()
    pick = pick[torch.randint(len(pick), (6,), generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        for k in range(6):
            one = net.G(train.images[pick[k:k + 1]].float() / 255.0, labels[k:k + 1])
            assert torch.equal((one * 255).round().clamp(0, 255).to(torch.uint8)[0], out[k])
    empty = method.sample(net, torch.zeros(0, dtype=torch.int64), train, ctx, torch.Generator().manual_seed(0))
    assert empty.shape == (0, 1, 8, 8) and empty.dtype == torch.uint8


def _samples(seed: int, shape=(1, 8, 8)):
    train, ctx = make(shape=shape, seed=seed)
    method, net = fitted(train, ctx)
    labels = torch.tensor([1] * 8 + [2] * 8)
    with torch.no_grad():
        return method.sample(net, labels, train, ctx, ctx.generator("cyclegan-sample"))


def test_same_seed_same_samples_different_seed_different():
    a, b, c = _samples(0), _samples(0), _samples(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_losses_finite_and_checked_every_step(monkeypatch):
    seen = []
    original = CycleGANOversampler.check_finite

    def spy(name, step, **losses):
        seen.append((step, {k: float(v.detach()) for k, v in losses.items()}))
        return original(name, step, **losses)

    monkeypatch.setattr(CycleGANOversampler, "check_finite", staticmethod(spy))
    train, ctx = make()
    fitted(train, ctx)
    assert [s for s, _ in seen] == list(range(SMOKE["steps"]))
    assert all(set(v) == {"g", "d"} and all(torch.isfinite(torch.tensor(x)) for x in v.values()) for _, v in seen)


def test_fit_trains_both_translators():
    train, ctx = make()
    method = CycleGANOversampler()
    torch.manual_seed(0)
    net = method.build(train.image_shape, train.num_classes)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    method.fit(net, train, ctx, SMOKE)
    changed = {k.split(".")[0] for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert {"G", "F", "source_mask"} <= changed


def test_no_deficit_fit_does_nothing():
    train, ctx = make(counts=(6, 6, 6))
    method = CycleGANOversampler()
    torch.manual_seed(0)
    net = method.build(train.image_shape, train.num_classes)
    params = {k: v.clone() for k, v in net.named_parameters()}
    method.fit(net, train, ctx, SMOKE)
    assert all(torch.equal(v, params[k]) for k, v in net.named_parameters())
    prepared = method.prepare(train, ctx)
    assert len(prepared) == len(train) and not prepared.synthetic.any()


@pytest.mark.parametrize("source", ["largest", "all-majority"])
def test_prepare_fills_every_class(source):
    train, ctx = make()
    assert ctx.cache_dir is None and ctx.source is None
    out = CycleGANOversampler(source=source).prepare(train, ctx)
    assert out.counts() == [24, 24, 24]
    n = len(train)
    assert not out.synthetic[:n].any() and out.synthetic[n:].all()
    assert torch.equal(out.images[:n], train.images) and torch.equal(out.labels[:n], train.labels)
    assert out.images.dtype == torch.uint8 and out.image_shape == train.image_shape
    assert ctx.record["generator_cache"] == "off"
    assert ctx.record["synthetic_per_class"] == [0, 16, 21]
    assert ctx.record["source_classes"] == ([0] if source == "largest" else [0, 1])


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_larger_shapes_fit_and_prepare(shape):
    train, ctx = make(shape=shape, budget={"steps": 6, "batch_size": 16, "lr": 2e-4})
    out = CycleGANOversampler().prepare(train, ctx)
    assert out.counts() == [24, 24, 24] and out.image_shape == shape
    assert out.images.dtype == torch.uint8 and out.synthetic.sum() == 24 * 3 - sum(COUNTS)


def test_cycle_loss_is_l1_of_the_round_trip():
    train, ctx = make()
    method = CycleGANOversampler()
    torch.manual_seed(0)
    net = method.build(train.image_shape, train.num_classes)
    d_t, d_s = method.discriminators(train.image_shape, train.num_classes)
    x = train.images[train.labels == 0][:8].float() / 255.0
    s = torch.zeros(8, dtype=torch.int64)
    c = torch.tensor([1, 2] * 4)
    y = torch.stack([train.images[train.labels == k][0] for k in c.tolist()]).float() / 255.0
    with torch.no_grad():
        direct = (net.F(net.G(x, c), c) - x).abs().mean()
        back = (net.G(net.F(y, c), c) - y).abs().mean()
        assert torch.allclose(cycle_loss(net, x, c), direct, atol=1e-6)
        losses, fake_t, fake_s = generator_losses(net, d_t, d_s, x, s, y, c, lambda_cycle=10.0, lambda_id=0.5)
        assert torch.allclose(losses["cycle_forward"], direct, atol=1e-5)
        assert torch.allclose(losses["cycle_backward"], back, atol=1e-5)
        assert torch.allclose(fake_t, net.G(x, c), atol=1e-5) and torch.allclose(fake_s, net.F(y, c), atol=1e-5)
        k = 2  # ID_FRACTION of 8
        ident = (net.G(y[:k], c[:k]) - y[:k]).abs().mean() + (net.F(x[:k], s[:k]) - x[:k]).abs().mean()
        assert torch.allclose(losses["identity"], ident, atol=1e-5)
        total = losses["adv_t"] + losses["adv_s"] + 10.0 * (direct + back) + 5.0 * ident
        assert torch.allclose(losses["total"], total, atol=1e-4)
        no_id, _, _ = generator_losses(net, d_t, d_s, x, s, y, c, lambda_cycle=10.0, lambda_id=0.0)
        assert "identity" not in no_id


@pytest.mark.parametrize("source,classes", [("largest", [0]), ("all-majority", [0, 1])])
def test_samples_are_translations_of_source_images(source, classes):
    train, ctx = make()
    method, net = fitted(train, ctx, source=source)
    identity = IdentityTranslator()
    net.G = identity
    labels = torch.tensor([1, 2, 2, 1, 2, 0, 2, 2, 1, 2] * 4)
    out = method.sample(net, labels, train, ctx, torch.Generator().manual_seed(3))
    pool = train.images[torch.isin(train.labels, torch.tensor(classes))].reshape(-1, 64)
    for img in out.reshape(len(out), 64):
        assert (pool == img).all(1).any(), "a sample is not a source-domain image"
    assert torch.equal(torch.cat(identity.seen), labels)
    picked = {int(torch.nonzero((train.images.reshape(-1, 64) == img).all(1))[0]) for img in out.reshape(-1, 64)}
    assert len(picked) > 5  # drawn at random over the domain, not one image
    assert {int(train.labels[i]) for i in picked} <= set(classes)
