"""adv-seg and scgan: the (image, label map) discriminator, its hook, the weighting-conditioned segmenter."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.plugins import load_methods, method_class
from imbench.gans.adv_seg import AdvSeg
from imbench.gans.pair_discriminator import LogitCache, PairDiscriminator, encode, one_hot, scaled_truth
from imbench.gans.scgan import SCGAN, WeightConditioned, classifier_of, exponent_weights
from imbench.tasks.segmentation.models import MODELS, build_segmenter
from imbench.tasks.segmentation.train import collate, fit, pixel_ce, predict
from imbench.testing import check_method, run_smoke_cell, tiny_seg_context, tiny_segset

VOID = 255


def _batch(train, n=4):
    return collate(train.images[:n], train.masks[:n], VOID, "cpu")


def _segmenter(train, name="unet", channels=1):
    torch.manual_seed(0)
    return build_segmenter(name, num_classes=train.num_classes, in_channels=channels,
                           mean=[0.2] * channels, std=[0.3] * channels)


@pytest.mark.parametrize("cls", [AdvSeg, SCGAN, "adv-seg+class-weighted"])
def test_contract_and_determinism(cls):
    if isinstance(cls, str):  # the adversarial term composes with another loss
        load_methods()
        cls = method_class(cls)
    check_method(cls)  # every hook, unet and lraspp-mobilenet, twice with one seed: equal


def test_encodings_and_void():
    y = torch.tensor([[[0, 1], [2, VOID]]])
    hot = one_hot(y, 3, VOID)
    assert hot[0, :, 1, 1].eq(0).all() and hot[0, :, 0, 0].tolist() == [1, 0, 0]
    probs = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    scaled = scaled_truth(y, probs, 0.9, VOID)
    assert torch.allclose(scaled[0, :, 0, 0], torch.tensor([0.9, 0.06, 0.04]))  # true class max(tau, s_y)
    assert torch.allclose(scaled[0, :, 0, 1], torch.tensor([0.5 * 0.1 / 0.7, 0.9, 0.2 * 0.1 / 0.7]))
    assert scaled[0, :, 1, 1].eq(0).all() and torch.allclose(scaled[0, :, :1].sum(0), torch.ones(1, 2))
    x = torch.rand(1, 3, 2, 2)
    prod = encode(x, hot, "product")
    assert prod.shape == (1, 9, 2, 2)
    assert torch.equal(prod.view(3, 3, 2, 2), x[0][:, None] * hot[0][None])  # channel c * K + k: x_c * p_k
    d = PairDiscriminator(3, 3, "product", width=4)
    assert d(torch.rand(2, 3, 13, 9), encode(torch.rand(2, 3, 13, 9), torch.rand(2, 3, 13, 9), "product")).shape == (2,)


def test_discriminator_step_changes_neither_gradients_nor_batchnorm():
    """With lam=0 a training step of adv-seg is erm's step (one forward, same gradients, same
    BatchNorm statistics) while the discriminator learns."""
    train = tiny_segset()
    ctx = tiny_seg_context(train)
    x, y = _batch(train)
    method = AdvSeg(lam=0.0)
    plain = _segmenter(train)
    wrapped = method.adapt_model(copy.deepcopy(plain), ctx)
    assert isinstance(wrapped, LogitCache) and wrapped.info() == plain.info()
    d_before = [p.detach().clone() for p in method.disc.parameters()]
    plain.train()
    wrapped.train()
    pixel_ce(VOID)(plain(x), y).backward()
    loss = pixel_ce(VOID)(wrapped(x), y) + method.adversary(wrapped, (x, y), ctx)
    loss.backward()
    for a, b in zip(plain.parameters(), wrapped.segmenter.parameters()):
        assert torch.equal(a.grad, b.grad)
    for a, b in zip(plain.buffers(), wrapped.segmenter.buffers()):
        assert torch.equal(a, b)  # running statistics moved once, as erm's
    assert any(not torch.equal(a, b) for a, b in zip(d_before, method.disc.parameters()))
    assert method._log["extra_forwards"] == 0


def test_adversarial_term_reaches_the_segmenter_not_the_discriminator():
    train = tiny_segset()
    ctx = tiny_seg_context(train)
    x, y = _batch(train)
    method = AdvSeg(lam=1.0)
    model = method.adapt_model(_segmenter(train), ctx)
    model.train()
    model(x)
    term = method.adversary(model, (x, y), ctx)
    for p in method.disc.parameters():
        p.grad = None
    term.backward()
    assert term.item() > 0
    assert all(p.grad is None for p in method.disc.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0
    entry = ctx.record["adv_seg"]
    assert entry["lam"] == 1.0 and entry["epochs"][0]["d_loss"] > 0


def test_void_pixels_carry_nothing():
    """Logits on void pixels change neither the discriminator's step nor the adversarial term; an
    unwrapped model gets one extra forward, counted."""
    train = tiny_segset()
    ctx = tiny_seg_context(train)
    x, y = _batch(train)
    assert (y == VOID).any()
    logits = torch.randn(len(x), train.num_classes, *y.shape[1:])
    other = torch.where((y == VOID).unsqueeze(1), torch.randn_like(logits) * 10, logits)

    class Fixed(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, x):
            return self.out

    method = AdvSeg(lam=1.0)
    method.adapt_model(_segmenter(train), ctx)
    twin = copy.deepcopy(method)
    a = method.adversary(Fixed(logits), (x, y), ctx)
    b = twin.adversary(Fixed(other), (x, y), ctx)
    assert torch.allclose(a, b)
    for p, q in zip(method.disc.parameters(), twin.disc.parameters()):
        assert torch.allclose(p, q)
    assert method._log["extra_forwards"] == 1


@pytest.mark.parametrize("encoding", ["product", "scaling"])
def test_three_channels_and_other_encodings(encoding):
    train = tiny_segset(images_per_class=(4, 2))
    train.images = [img.expand(3, -1, -1).clone() for img in train.images]
    ctx = tiny_seg_context(train)
    x, y = _batch(train)
    method = AdvSeg(encoding=encoding, lam=0.5)
    model = method.adapt_model(_segmenter(train, channels=3), ctx)
    model.train()
    loss = pixel_ce(VOID)(model(x), y) + method.adversary(model, (x, y), ctx)
    loss.backward()
    assert torch.isfinite(loss) and ctx.record["adv_seg"]["encoding"] == encoding


def test_bad_parameters_are_usage_errors():
    for params in ({"encoding": "sum"}, {"lam": -1}, {"tau": 1.0}, {"width": 0}):
        with pytest.raises(UsageError):
            AdvSeg(**params)
    for params in ({"test_exponent": 1.5}, {"max_exponent": 0}):
        with pytest.raises(UsageError):
            SCGAN(**params)


def test_weightings_span_uniform_to_inverse_frequency():
    counts = torch.tensor([1000.0, 100.0, 10.0])
    w = exponent_weights(counts.log(), torch.tensor([0.0, 1.0, 0.5]))
    assert torch.allclose(w[0], torch.ones(3))
    inv = 1 / counts
    assert torch.allclose(w[1], inv / inv.mean())
    assert torch.allclose(w[2], counts ** -0.5 / (counts ** -0.5).mean())


def test_scgan_starts_as_the_segmenter_and_weights_its_ce():
    train = tiny_segset()
    ctx = tiny_seg_context(train)
    x, y = _batch(train)
    plain = _segmenter(train)
    method = SCGAN(test_exponent=0.5)
    model = method.adapt_model(copy.deepcopy(plain), ctx)
    assert isinstance(model, WeightConditioned) and model.classifier_name == "net.head"
    plain.eval()
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), atol=1e-6)  # the FiLM starts as the identity
        logits = model(x)
    loss = method.criterion(ctx)
    w = model.test_weights
    assert torch.allclose(loss(logits, y), F.cross_entropy(logits, y, weight=w, ignore_index=VOID), atol=1e-6)
    expected = exponent_weights(torch.tensor(ctx.instance_counts, dtype=torch.float32).log(), torch.tensor([0.5]))[0]
    assert torch.allclose(w, expected)
    assert loss(logits, torch.full_like(y, VOID)).item() == 0.0
    model.train()
    model(x)
    drawn = model.last_weights
    assert drawn.shape == (len(x), train.num_classes) and not torch.allclose(drawn[0], drawn[1])


def test_scgan_conditioning_reaches_the_logits():
    train = tiny_segset()
    ctx = tiny_seg_context(train)
    x, _ = _batch(train)
    method = SCGAN()
    model = method.adapt_model(_segmenter(train), ctx)
    torch.nn.init.normal_(model.film[-1].weight)
    model.eval()
    with torch.no_grad():
        at_test = model(x)
        model.test_weights.fill_(1.0)
        uniform = model(x)
    assert not torch.allclose(at_test, uniform)


@pytest.mark.parametrize("name", sorted(MODELS.names()))
def test_scgan_conditions_every_model(name):
    train = tiny_segset(images_per_class=(3, 1))
    seg = _segmenter(train, name)
    layer, conv = classifier_of(seg, train.num_classes)
    assert conv.kernel_size == (1, 1), layer
    if name == "fcn-resnet50":
        return  # the classifier is found; a training step of a 35 M-parameter model is left to the GPU
    ctx = tiny_seg_context(train, model=name)
    x, y = _batch(train, n=2)
    method = SCGAN()
    model = method.adapt_model(seg, ctx)
    model.train()
    loss = method.criterion(ctx)(model(x), y) + method.adversary(model, (x, y), ctx)
    loss.backward()
    assert model.film[-1].weight.grad.abs().sum() > 0


def test_adv_seg_trains_through_the_track_loop():
    """The track's own ``fit`` with adv-seg: every step's term is built on the cached forward."""
    train = tiny_segset()
    ctx = tiny_seg_context(train, epochs=2)
    method = AdvSeg()
    model = method.adapt_model(_segmenter(train), ctx)
    history, training = fit(model, train, method, ctx)
    entry = ctx.record["adv_seg"]
    assert training["train_steps"] == len(entry["epochs"]) * (len(train) // 4) and entry["extra_forwards"] == 0
    assert all(v == v for v in history["loss"]) and [e["epoch"] for e in entry["epochs"]] == [0, 1]
    assert len(predict(model, train.images[:3], "cpu")) == 3


def test_scgan_one_cell_end_to_end(tmp_path):
    record = run_smoke_cell(SCGAN, tmp_path, track="segmentation")
    assert record["status"] == "ok", record.get("error")
    entry = record["extras"]["scgan"]
    assert entry["extra_forwards"] == 0 and entry["epochs"] and entry["conditioned_layer"] == "net.head"
    assert len(entry["test_weights"]) == 11 and record["metrics"]["miou"] is not None
