"""The autoencoder-based generative oversamplers: BAGAN, DeepSMOTE, CVAE (and their shared nets)."""
from __future__ import annotations

import copy

import pytest
import torch

from imbench.gans import base as gan_base
from imbench.gans.autoencoders import Decoder, Encoder, encode, one_hot, to_unit
from imbench.gans.bagan import BAGAN
from imbench.gans.cvae import CVAE, elbo_terms, kl_divergence
from imbench.gans.deepsmote import DeepSMOTE, cyclic_shift, latent_smote, permutation_loss
from imbench.testing import tiny_context, tiny_imageset

SMOKE = {"steps": 30, "batch_size": 32, "lr": 2e-4}
METHODS = (BAGAN, DeepSMOTE, CVAE)
SHAPES = [(1, 8, 8), (3, 8, 8), (1, 16, 16), (1, 28, 28), (3, 28, 28), (1, 32, 32), (3, 32, 32)]


def make_ctx(train, seed=0, budget=SMOKE):
    return tiny_context(train, seed=seed, gan=budget)


def trained(cls, train, seed=0, budget=SMOKE, **params):
    """(method, ctx, fitted module) the way the base class trains it (seeded build + fit)."""
    method = cls(**params)
    ctx = make_ctx(train, seed, budget)
    net = method._generator(train, ctx, ctx.budget["gan"])
    net.eval()
    return method, ctx, net


def draw(method, net, labels, train, ctx, salt="s"):
    with torch.no_grad():
        return method.sample(net, torch.as_tensor(labels), train, ctx, ctx.generator(salt))


@pytest.fixture(scope="module")
def tiny():
    return tiny_imageset(counts=(24, 8, 3), shape=(1, 8, 8))


@pytest.fixture(scope="module")
def fitted(tiny):
    return {cls.name: trained(cls, tiny) for cls in METHODS}


def on_segment(point: torch.Tensor, codes: torch.Tensor, tol: float = 1e-4) -> bool:
    """Is ``point`` on a segment between two rows of ``codes`` (or equal to one)?"""
    p, c = point.double(), codes.double()
    for i in range(len(c)):
        for j in range(len(c)):
            d = c[j] - c[i]
            t = float(torch.dot(p - c[i], d) / torch.dot(d, d).clamp(min=1e-12))
            if -tol <= t <= 1 + tol and torch.allclose(c[i] + t * d, p, atol=tol * (1 + c.abs().max())):
                return True
    return False


# ---------------------------------------------------------------- the shared encoder / decoder
@pytest.mark.parametrize("shape", SHAPES)
def test_encoder_decoder_sized_from_input(shape):
    x = torch.rand(4, *shape)
    enc, dec = Encoder(shape, 10), Decoder(shape, 10)
    z = enc(x)
    out = dec(z)
    assert z.shape == (4, 10) and out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    cond = one_hot(torch.tensor([0, 1, 2, 0]), 3)
    enc_c, dec_c = Encoder(shape, 10, cond=3, out_features=20), Decoder(shape, 10, cond=3)
    assert enc_c(x, cond).shape == (4, 20) and dec_c(enc_c(x, cond)[:, :10], cond).shape == x.shape


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_fit_and_sample_shapes(cls, shape):
    train = tiny_imageset(counts=(12, 5, 2), shape=shape)
    method, ctx, net = trained(cls, train, budget={"steps": 4, "batch_size": 8, "lr": 2e-4})
    labels = torch.tensor([2, 0, 1, 1, 2, 0, 0])
    out = draw(method, net, labels, train, ctx)
    assert out.dtype == torch.uint8 and out.shape == (len(labels), *shape)
    assert draw(method, net, torch.zeros(0, dtype=torch.int64), train, ctx).shape == (0, *shape)


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
def test_same_seed_same_samples_other_seed_differs(cls, tiny, fitted):
    method, ctx, net = fitted[cls.name]
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    first = draw(method, net, labels, tiny, ctx)
    m2, ctx2, net2 = trained(cls, tiny, seed=0)
    assert torch.equal(first, draw(m2, net2, labels, tiny, ctx2))
    for (a, b) in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    m3, ctx3, net3 = trained(cls, tiny, seed=1)
    assert not torch.equal(first, draw(m3, net3, labels, tiny, ctx3))


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
def test_losses_finite_every_step(cls, tiny, monkeypatch):
    seen: dict[str, list[float]] = {}
    original = gan_base.GenerativeOversampler.check_finite

    def spy(name, step, **losses):
        for key, value in losses.items():
            seen.setdefault(key, []).append(float(value.detach()))
        original(name, step, **losses)

    monkeypatch.setattr(cls, "check_finite", staticmethod(spy))
    trained(cls, tiny)
    assert seen and all(torch.isfinite(torch.tensor(v)).all() for v in seen.values())
    expected = {"bagan": {"rec": 15, "d": 15, "g": 15}, "deepsmote": {"rec": 30, "perm": 30},
                "cvae": {"rec": 30, "kl": 30}}[cls.name]
    assert {k: len(v) for k, v in seen.items()} == expected


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
def test_prepare_fills_every_class(cls, tiny):
    ctx = make_ctx(tiny)
    out = cls().prepare(tiny, ctx)
    assert out.counts() == [24, 24, 24]
    n = len(tiny)
    assert not out.synthetic[:n].any() and out.synthetic[n:].all()
    assert torch.equal(out.images[:n], tiny.images) and torch.equal(out.labels[:n], tiny.labels)
    assert ctx.record["generator_cache"] == "off"
    assert ctx.record["synthetic_per_class"] == [0, 16, 21]


# ---------------------------------------------------------------- BAGAN
def test_bagan_class_gaussians_fit_the_encoder_codes(tiny, fitted):
    method, ctx, net = fitted["bagan"]
    codes = encode(net.encoder, tiny.images).double()
    ridge = float(method.params["ridge"])
    for c in range(3):
        own = codes[tiny.labels == c]
        assert torch.allclose(net.means[c].double(), own.mean(0), atol=1e-5)
        cov = net.chol[c].double() @ net.chol[c].double().T
        assert torch.allclose(cov, torch.cov(own.T) + ridge * torch.eye(codes.shape[1], dtype=torch.float64),
                              atol=1e-4)


def test_bagan_single_image_class_gets_ridge_covariance():
    train = tiny_imageset(counts=(10, 4, 1))
    method, ctx, net = trained(BAGAN, train, budget={"steps": 4, "batch_size": 8, "lr": 2e-4})
    dim = net.means.shape[1]
    expect = (float(method.params["ridge"]) ** 0.5) * torch.eye(dim)
    assert torch.allclose(net.chol[2], expect, atol=1e-6)
    code = encode(net.encoder, train.images[train.labels == 2])[0]
    assert torch.allclose(net.means[2], code, atol=1e-5)


def test_bagan_generator_starts_from_the_decoder_and_discriminator_from_the_encoder(tiny, monkeypatch):
    snaps: dict[str, dict] = {}
    method = BAGAN()
    train_ae, train_adv, make_disc = method.train_autoencoder, method.train_adversarial, method.make_discriminator

    def after_ae(net, *args):
        train_ae(net, *args)
        snaps["decoder"] = copy.deepcopy(net.generator.state_dict())
        snaps["encoder"] = copy.deepcopy(net.encoder.state_dict())

    def before_adv(net, *args):
        snaps["generator_start"] = copy.deepcopy(net.generator.state_dict())
        train_adv(net, *args)
        snaps["generator_end"] = copy.deepcopy(net.generator.state_dict())

    def disc(net, num_classes):
        d = make_disc(net, num_classes)
        snaps["disc"] = copy.deepcopy(d.state_dict())
        snaps["disc_out"] = d.head.out_features
        return d

    monkeypatch.setattr(method, "train_autoencoder", after_ae)
    monkeypatch.setattr(method, "train_adversarial", before_adv)
    monkeypatch.setattr(method, "make_discriminator", disc)
    ctx = make_ctx(tiny)
    net = method._generator(tiny, ctx, ctx.budget["gan"])
    assert method.split(30) == (15, 15)
    for key, value in snaps["decoder"].items():
        assert torch.equal(value, snaps["generator_start"][key])
    assert any(not torch.equal(v, snaps["generator_end"][k]) for k, v in snaps["decoder"].items())
    trunk = {k: v for k, v in snaps["encoder"].items() if k.startswith("trunk.")}
    assert trunk and all(torch.equal(v, snaps["disc"][f"body.{k}"]) for k, v in trunk.items())
    assert snaps["disc_out"] == 3 + 1
    for key, value in snaps["encoder"].items():  # the adversarial stage leaves the encoder alone
        assert torch.equal(value, net.encoder.state_dict()[key])


def test_bagan_samples_follow_the_requested_labels(tiny, fitted):
    method, ctx, net = fitted["bagan"]
    net = copy.deepcopy(net)
    net.chol.zero_()  # z = mu_c exactly: each image must be the decoded mean of its label
    labels = torch.tensor([2, 0, 1, 2, 0])
    out = draw(method, net, labels, tiny, ctx)
    with torch.no_grad():
        expect = net.generator(net.means[labels])
    assert torch.equal(out, (expect * 255).round().clamp(0, 255).to(torch.uint8))


# ---------------------------------------------------------------- DeepSMOTE
def test_latent_smote_interpolates_between_near_neighbours():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(7, 4, generator=g)
    k = 3
    out = latent_smote(codes, 60, k, torch.Generator().manual_seed(1))
    assert out.shape == (60, 4)
    dist = torch.cdist(codes, codes)
    dist.fill_diagonal_(float("inf"))
    nbrs = dist.argsort(dim=1)[:, :k]
    for p in out:
        ok = False
        for i in range(7):
            for j in nbrs[i].tolist():
                d = codes[j] - codes[i]
                t = float(torch.dot(p - codes[i], d) / torch.dot(d, d))
                ok |= -1e-5 <= t <= 1 + 1e-5 and torch.allclose(codes[i] + t * d, p, atol=1e-5)
        assert ok
    again = latent_smote(codes, 60, k, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert not torch.equal(out, latent_smote(codes, 60, k, torch.Generator().manual_seed(2)))


def test_latent_smote_small_classes():
    codes = torch.randn(3, 5)
    out = latent_smote(codes, 20, 5, torch.Generator().manual_seed(0))  # k reduced to n_c - 1 = 2
    assert all(on_segment(p, codes) for p in out)
    single = codes[:1]
    assert torch.equal(latent_smote(single, 4, 5, torch.Generator().manual_seed(0)), single.expand(4, 5))
    jittered = latent_smote(single, 4, 5, torch.Generator().manual_seed(0), jitter=0.1)
    assert not torch.equal(jittered, single.expand(4, 5)) and (jittered - single).abs().max() < 1.0


def test_deepsmote_latent_samples_lie_between_same_class_codes(tiny, fitted):
    method, ctx, net = fitted["deepsmote"]
    labels = torch.tensor([1, 2, 0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        z = method.sample_codes(net, labels, tiny, ctx, ctx.generator("s"))
    codes = encode(net.encoder, tiny.images)
    for point, c in zip(z, labels.tolist()):
        assert on_segment(point, codes[tiny.labels == c])
    with torch.no_grad():
        images = method.sample(net, labels, tiny, ctx, ctx.generator("s"))
        expect = net.decoder(z)
    assert torch.equal(images, (expect * 255).round().clamp(0, 255).to(torch.uint8))


def test_deepsmote_single_image_class_is_jittered():
    train = tiny_imageset(counts=(10, 4, 1))
    method, ctx, net = trained(DeepSMOTE, train, budget={"steps": 4, "batch_size": 8, "lr": 2e-4})
    with torch.no_grad():
        z = method.sample_codes(net, torch.tensor([2, 2, 2]), train, ctx, ctx.generator("s"))
    code = encode(net.encoder, train.images[train.labels == 2])[0]
    assert not torch.equal(z[0], z[1]) and torch.allclose(z.mean(0), code, atol=1.0)
    assert ctx.record["latent_jittered_classes"] == [2]


def test_deepsmote_permutation_loss_is_the_permuted_reconstruction(tiny, fitted):
    _, _, net = fitted["deepsmote"]
    net = copy.deepcopy(net).train()
    x = to_unit(tiny.images[tiny.labels == 1])
    perm = cyclic_shift(len(x))
    assert perm.tolist() == [1, 2, 3, 4, 5, 6, 7, 0]
    loss = permutation_loss(net.encoder, net.decoder, x, perm)
    direct = torch.mean((net.decoder(net.encoder(x)[perm]) - x[perm]) ** 2)
    assert torch.allclose(loss, direct)
    net.zero_grad()
    loss.backward()  # the official code detaches the embeddings: only the decoder learns from it
    assert all(p.grad is None for p in net.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.decoder.parameters())


# ---------------------------------------------------------------- CVAE
def test_cvae_kl_is_the_closed_form(tiny, fitted):
    _, _, net = fitted["cvae"]
    x, y = to_unit(tiny.images[:10]), tiny.labels[:10]
    eps = torch.randn(10, net.latent, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bce, kl, mu, logvar = elbo_terms(net, x, y, eps)
        ref = torch.distributions.kl_divergence(
            torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)).sum(1)
        mu2, logvar2 = net.posterior(x, y)
        recon = net.decoder(mu + torch.exp(0.5 * logvar) * eps, one_hot(y, 3))
    assert torch.allclose(kl, ref.mean(), atol=1e-5)
    assert torch.allclose(kl_divergence(mu, logvar), ref, atol=1e-5)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    expect_bce = -(x * recon.log() + (1 - x) * (1 - recon).log()).flatten(1).sum(1).mean()
    assert torch.allclose(bce, expect_bce, rtol=1e-4)
    assert float(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0


def test_cvae_samples_are_prior_draws_decoded_with_their_label(tiny, fitted):
    method, ctx, net = fitted["cvae"]
    labels = torch.tensor([2, 0, 1, 2])
    out = draw(method, net, labels, tiny, ctx, salt="order")
    z = torch.randn(4, net.latent, generator=ctx.generator("order"))
    with torch.no_grad():
        expect = net.decoder(z, one_hot(labels, 3))
    assert torch.equal(out, (expect * 255).round().clamp(0, 255).to(torch.uint8))


def test_parameters_are_validated():
    from imbench.benchmarks.contract.errors import UsageError

    with pytest.raises(UsageError):
        DeepSMOTE(k_neighbors=0)
    with pytest.raises(UsageError):
        BAGAN(ae_fraction=1.5)
    with pytest.raises(UsageError):
        CVAE(beta_kl=-1)
    assert CVAE().params["latent"] == 16 and CVAE().params["beta_kl"] == 1.0
    assert DeepSMOTE().params["k_neighbors"] == 5
