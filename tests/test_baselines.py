"""Tests of the non-GAN baseline methods of the classification track (imbench.baselines)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.contract import Context, Method
from imbench.benchmarks.plugins import METHODS, create_method, load_methods
from imbench.data_recipes.imageset import ImageSet

BASELINES = ["erm", "ros", "rus", "smote", "adasyn", "borderline-smote", "class-weighted", "cb-loss",
             "focal", "ldam-drw", "augment", "random-erasing"]
COUNTS = [30, 10, 4]
load_methods()


def make_set(counts=COUNTS, shape=(1, 8, 8), seed=0, spread=60.0) -> ImageSet:
    """Class c: a noisy image around a class-specific mean pattern (classes overlap a little)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, n in enumerate(counts):
        mean = rng.uniform(60, 190, size=shape)
        images.append(np.clip(mean + rng.normal(0, spread, size=(n, *shape)), 0, 255))
        labels += [c] * n
    images = torch.from_numpy(np.concatenate(images).round().astype(np.uint8))
    return ImageSet(images, torch.tensor(labels), [f"c{i}" for i in range(len(counts))])


def make_ctx(counts=COUNTS, seed=0, epochs=10, dataset="", minority=(2,)) -> Context:
    return Context(track="classification", class_names=[f"c{i}" for i in range(len(counts))],
                   instance_counts=list(counts), minority=list(minority), seed=seed, epochs=epochs,
                   dataset=dataset)


def prepared(name, train=None, ctx=None, **params):
    train = train if train is not None else make_set()
    ctx = ctx if ctx is not None else make_ctx(train.counts())
    return create_method(name, **params).prepare(train, ctx), train, ctx


class TinyNet(nn.Module):
    def __init__(self, in_shape=(1, 8, 8), k=3, hidden=16):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(in_shape)), hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, k)

    def forward(self, x):
        return self.classifier(self.body(x))


# ------------------------------------------------------------------ registry


def test_every_baseline_registered_with_required_attributes():
    load_methods()
    for name in BASELINES:
        cls = METHODS.get(name)
        assert issubclass(cls, Method) and cls.name == name
        assert cls.family == "baseline" and "classification" in cls.tracks
        assert cls.summary and cls.reference and isinstance(cls.defaults, dict)
        assert create_method(name).params == cls.defaults


def test_erm_has_no_hooks():
    assert METHODS.get("erm").hooks() == []


# ------------------------------------------------------------------ data-level


def _check_preserved(out: ImageSet, train: ImageSet):
    assert out.images.dtype == torch.uint8 and out.image_shape == train.image_shape
    assert out.labels.dtype == torch.int64 and len(out.synthetic) == len(out)


def test_ros_exact_counts_real_duplicates():
    out, train, ctx = prepared("ros")
    _check_preserved(out, train)
    assert out.counts() == [30, 30, 30] and ctx.record["counts_after_prepare"] == [30, 30, 30]
    assert torch.equal(out.images[: len(train)], train.images) and torch.equal(out.labels[: len(train)], train.labels)
    assert not out.synthetic.any()
    flat_train = train.images.reshape(len(train), -1)
    for img, lab in zip(out.images[len(train):], out.labels[len(train):]):
        same = (flat_train == img.reshape(-1)).all(1) & (train.labels == lab)
        assert same.any()


def test_rus_exact_counts_subset_of_originals():
    out, train, _ = prepared("rus")
    _check_preserved(out, train)
    assert out.counts() == [4, 4, 4]
    flat_train = train.images.reshape(len(train), -1)
    rows = [int(torch.nonzero((flat_train == img.reshape(-1)).all(1))[0]) for img in out.images]
    assert len(set(rows)) == 12 and rows == sorted(rows)


def test_ros_rus_deterministic_for_a_seed():
    train = make_set([50, 20, 7])
    a, _, _ = prepared("rus", train, make_ctx(train.counts(), seed=1))
    b, _, _ = prepared("rus", train, make_ctx(train.counts(), seed=1))
    c, _, _ = prepared("rus", train, make_ctx(train.counts(), seed=2))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    a, _, _ = prepared("ros", train, make_ctx(train.counts(), seed=1))
    c, _, _ = prepared("ros", train, make_ctx(train.counts(), seed=2))
    assert not torch.equal(a.images, c.images)


def test_smote_exact_counts_flags_and_originals():
    out, train, ctx = prepared("smote")
    _check_preserved(out, train)
    assert out.counts() == [30, 30, 30]
    n = len(train)
    assert torch.equal(out.images[:n], train.images) and torch.equal(out.labels[:n], train.labels)
    assert not out.synthetic[:n].any() and out.synthetic[n:].all()
    assert ctx.record["n_synthetic"] == 90 - n


def _on_some_segment(s: np.ndarray, pts: np.ndarray, tol: float = 1.0) -> bool:
    """Is ``s`` within ``tol`` per pixel of a segment between two of ``pts``? (uint8 rounding
    moves a point by <= 0.5 per pixel; the least-squares foot of the perpendicular adds a little.)"""
    for i in range(len(pts)):
        for j in range(len(pts)):
            if i == j:
                continue
            d = pts[j] - pts[i]
            t = np.clip(np.dot(s - pts[i], d) / max(np.dot(d, d), 1e-12), 0, 1)
            if np.abs(pts[i] + t * d - s).max() <= tol:
                return True
    return False


def test_smote_samples_interpolate_same_class_points():
    out, train, _ = prepared("smote", k_neighbors=2)
    n = len(train)
    x = out.images.reshape(len(out), -1).numpy().astype(np.float64)
    for c in (1, 2):
        pts = train.flat()[train.labels.numpy() == c]
        new = x[n:][out.labels[n:].numpy() == c]
        assert len(new) == 30 - COUNTS[c]
        assert all(_on_some_segment(s, pts) for s in new)
        assert not _on_some_segment(x[0], pts)  # a majority item is not on a minority segment


def test_smote_adapts_k_to_small_class_and_records_it():
    out, _, ctx = prepared("smote", k_neighbors=5)  # smallest class has 4 items
    assert out.counts() == [30, 30, 30]
    assert ctx.record["k_neighbors_used"] == 3 and "k_neighbors_note" in ctx.record
    _, _, ctx = prepared("smote", make_set([30, 10, 8]), k_neighbors=5)
    assert ctx.record["k_neighbors_used"] == 5 and "k_neighbors_note" not in ctx.record


def test_smote_single_item_class_falls_back_to_random_oversampling():
    train = make_set([30, 10, 1])
    out, _, ctx = prepared("smote", train)
    assert out.counts() == [30, 30, 30]
    assert ctx.record["random_oversampled_classes"] == [2]
    only = train.images[train.labels == 2][0]
    dup = out.images[out.labels == 2]
    assert (dup == only).all() and not out.synthetic[out.labels == 2].any()
    assert out.synthetic[out.labels == 1].sum() == 20


def test_smote_deterministic_for_a_seed():
    train = make_set()
    a, _, _ = prepared("smote", train, make_ctx(seed=3))
    b, _, _ = prepared("smote", train, make_ctx(seed=3))
    c, _, _ = prepared("smote", train, make_ctx(seed=4))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_adasyn_guarantees():
    out, train, ctx = prepared("adasyn")
    _check_preserved(out, train)
    n = len(train)
    counts = out.counts()
    assert counts[0] == 30 and all(counts[c] >= COUNTS[c] for c in (1, 2))
    assert all(abs(counts[c] - 30) <= COUNTS[c] for c in (1, 2))  # rounding: at most 1 per seed item
    assert torch.equal(out.images[:n], train.images) and out.synthetic[n:].all() and not out.synthetic[:n].any()
    assert ctx.record["k_neighbors_used"] == 3
    again, _, _ = prepared("adasyn", train, make_ctx())
    assert torch.equal(again.images, out.images)


def test_adasyn_falls_back_to_smote_for_a_class_without_hard_items():
    train = make_set(spread=2.0)  # well separated: all neighbours of a class are its own
    out, _, ctx = prepared("adasyn", train)
    assert ctx.record["adasyn_smote_fallback"] == [1, 2]
    assert out.counts() == [30, 30, 30]


def test_borderline_smote_guarantees():
    out, train, ctx = prepared("borderline-smote")
    _check_preserved(out, train)
    counts, n = out.counts(), len(train)
    assert counts[0] == 30 and all(COUNTS[c] <= counts[c] <= 30 for c in (1, 2))
    unchanged = ctx.record["borderline_unchanged_classes"]
    assert all(counts[c] == (COUNTS[c] if c in unchanged else 30) for c in (1, 2))
    assert torch.equal(out.images[:n], train.images) and out.synthetic[n:].all()
    assert ctx.record["k_neighbors_used"] == 3 and ctx.record["m_neighbors_used"] == 10
    # well separated: class 1 (10 items) has < m/2 foreign neighbours everywhere, so no danger
    # item, and stays; class 2 (4 items) has >= 7 of 10 foreign neighbours, so all are in danger
    out, _, ctx = prepared("borderline-smote", make_set(spread=2.0))
    assert out.counts() == [30, 10, 30] and ctx.record["borderline_unchanged_classes"] == [1]


# ------------------------------------------------------------------ losses


def _batch(k=3, b=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g) * 2
    targets = torch.arange(b) % k
    return logits, targets


def test_class_weighted_equals_weighted_ce():
    ctx = make_ctx()
    loss = create_method("class-weighted").criterion(ctx)
    inv = torch.tensor([1 / 30, 1 / 10, 1 / 4])
    w = inv / inv.sum() * 3
    logits, targets = _batch()
    assert torch.allclose(loss(logits, targets), F.cross_entropy(logits, targets, weight=w), atol=1e-6)
    assert ctx.record["class_weights"] == pytest.approx(w.tolist(), abs=1e-5)


def test_class_weighted_guards_empty_class():
    loss = create_method("class-weighted").criterion(make_ctx([30, 0, 4]))
    assert loss.weight[1] == 0 and loss.weight.sum().item() == pytest.approx(3.0)


def _cb_weights(beta, counts=COUNTS):
    n = torch.tensor(counts, dtype=torch.float64)
    w = (1 - beta) / (1 - beta ** n)
    return (w / w.sum() * len(counts)).float()


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_cb_softmax_equals_reference(beta):
    loss = create_method("cb-loss", beta=beta).criterion(make_ctx())
    logits, targets = _batch()
    w = _cb_weights(beta)
    expected = (w[targets] * F.cross_entropy(logits, targets, reduction="none")).sum() / len(targets)
    assert torch.allclose(loss(logits, targets), expected, atol=1e-6)


def test_cb_beta_zero_is_plain_ce():
    loss = create_method("cb-loss", beta=0.0).criterion(make_ctx())
    logits, targets = _batch()
    assert torch.allclose(loss(logits, targets), F.cross_entropy(logits, targets), atol=1e-6)


@pytest.mark.parametrize("variant,gamma", [("sigmoid", 0.0), ("focal", 0.5), ("focal", 2.0)])
def test_cb_sigmoid_and_focal_equal_reference(variant, gamma):
    loss = create_method("cb-loss", beta=0.99, loss=variant, gamma=gamma).criterion(make_ctx())
    logits, targets = _batch()
    labels = F.one_hot(targets, 3).float()
    alpha = _cb_weights(0.99)[targets][:, None].repeat(1, 3)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    modulator = 1.0 if variant == "sigmoid" else torch.exp(
        -gamma * labels * logits - gamma * torch.log(1 + torch.exp(-1.0 * logits)))
    expected = torch.sum(alpha * modulator * bce) / torch.sum(labels)
    assert torch.allclose(loss(logits, targets), expected, atol=1e-5)
    if variant == "focal":  # the modulator is (1 - p_t)^gamma with sigmoid probabilities
        p = torch.sigmoid(logits)
        p_t = torch.where(labels == 1, p, 1 - p)
        assert torch.allclose(modulator, (1 - p_t) ** gamma, atol=1e-5)


def test_cb_sigmoid_initialises_classifier_bias():
    model = create_method("cb-loss", loss="sigmoid").adapt_model(TinyNet(), make_ctx())
    assert torch.allclose(model.classifier.bias, torch.full((3,), -np.log(2.0)))
    model = TinyNet()
    before = model.classifier.bias.clone()
    assert torch.equal(create_method("cb-loss").adapt_model(model, make_ctx()).classifier.bias, before)


def test_focal_equals_formula_and_ce_at_gamma_zero():
    logits, targets = _batch()
    p_t = logits.softmax(1)[torch.arange(len(targets)), targets]
    for gamma in (0.5, 1.0, 2.0):
        loss = create_method("focal", gamma=gamma).criterion(make_ctx())
        expected = (-(1 - p_t) ** gamma * torch.log(p_t)).mean()
        assert torch.allclose(loss(logits, targets), expected, atol=1e-6)
    ce = create_method("focal", gamma=0.0).criterion(make_ctx())
    assert torch.allclose(ce(logits, targets), F.cross_entropy(logits, targets), atol=1e-6)
    assert create_method("focal").params["gamma"] == 2.0


def test_focal_alpha_balancing_uses_minority_classes():
    logits, targets = _batch()
    loss = create_method("focal", gamma=1.0, alpha=0.75).criterion(make_ctx(minority=(2,)))
    p_t = logits.softmax(1)[torch.arange(len(targets)), targets]
    alpha_t = torch.where(targets == 2, 0.75, 0.25)
    expected = (-alpha_t * (1 - p_t) * torch.log(p_t)).mean()
    assert torch.allclose(loss(logits, targets), expected, atol=1e-6)


def test_ldam_margins():
    loss = create_method("ldam-drw").criterion(make_ctx())
    m = loss.margins.double()
    assert m.max().item() == pytest.approx(0.5) and m.argmax().item() == 2
    products = m * torch.tensor(COUNTS, dtype=torch.float64) ** 0.25
    assert torch.allclose(products, products[0].expand(3))


def test_ldam_loss_is_ce_on_adjusted_logits():
    loss = create_method("ldam-drw", s=10.0, max_m=0.3).criterion(make_ctx())
    logits, targets = _batch()
    logits = logits.clamp(-1, 1)
    m = 0.3 * (torch.tensor(COUNTS, dtype=torch.float32) ** -0.25) / (4 ** -0.25)
    adjusted = logits.clone()
    adjusted[torch.arange(len(targets)), targets] -= m[targets]
    assert torch.allclose(loss(logits, targets), F.cross_entropy(10.0 * adjusted, targets), atol=1e-5)


def test_drw_switches_weights_at_the_right_epoch():
    method, ctx = create_method("ldam-drw"), make_ctx(epochs=10)
    loss = method.criterion(ctx)
    assert ctx.record["drw_start_epoch"] == 8
    for epoch in range(10):
        ctx.epoch = epoch
        method.on_epoch(epoch, ctx)
        expected = _cb_weights(0.9999) if epoch >= 8 else torch.ones(3)
        assert torch.allclose(loss.weight, expected, atol=1e-6), epoch
    logits, targets = _batch()
    adjusted = logits - F.one_hot(targets, 3) * loss.margins[targets][:, None]
    expected = F.cross_entropy(30 * adjusted, targets, weight=_cb_weights(0.9999))
    assert torch.allclose(loss(logits, targets), expected, atol=1e-5)
    plain, ctx = create_method("ldam-drw", drw=False), make_ctx(epochs=10)
    loss = plain.criterion(ctx)
    plain.on_epoch(9, ctx)
    assert torch.equal(loss.weight, torch.ones(3)) and "drw_start_epoch" not in ctx.record


def test_normed_linear_outputs_cosines():
    model = create_method("ldam-drw").adapt_model(TinyNet(), make_ctx())
    head = model.classifier
    assert type(head).__name__ == "NormedLinear" and tuple(head.weight.shape) == (16, 3)
    feats = torch.randn(20, 16) * 5
    out = head(feats)
    assert out.shape == (20, 3) and out.abs().max() <= 1 + 1e-6
    expected = F.cosine_similarity(feats[:, :, None], head.weight[None], dim=1)
    assert torch.allclose(out, expected, atol=1e-5)
    again = create_method("ldam-drw").adapt_model(TinyNet(), make_ctx())
    assert torch.equal(again.classifier.weight, head.weight)


# ------------------------------------------------------------------ augmentations


def _images(shape=(1, 8, 8), b=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, *shape, generator=g), torch.arange(b) % 3


def _run_aug(name, x, y, seed=0, dataset="", **params):
    method, ctx = create_method(name, **params), make_ctx(seed=seed, dataset=dataset)
    method.on_epoch(0, ctx)
    return method.augment((x.clone(), y.clone()), ctx), ctx


@pytest.mark.parametrize("name,shape,dataset,params", [
    ("augment", (1, 8, 8), "digits", {}),
    ("augment", (3, 16, 16), "cifar10", {}),
    ("augment", (3, 16, 16), "svhn", {}),
    ("random-erasing", (1, 8, 8), "digits", {}),
    ("random-erasing", (3, 16, 16), "cifar10", {"p": 1.0}),
])
def test_augmentations_keep_batch_and_are_deterministic(name, shape, dataset, params):
    x, y = _images(shape)
    (xa, ya), _ = _run_aug(name, x, y, 0, dataset, **params)
    assert xa.shape == x.shape and xa.dtype == x.dtype and torch.equal(ya, y)
    assert xa.min() >= 0 and xa.max() <= 1 and not torch.equal(xa, x)
    (xb, _), _ = _run_aug(name, x, y, 0, dataset, **params)
    (xc, _), _ = _run_aug(name, x, y, 1, dataset, **params)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_augment_policies_and_flip_rule():
    x, y = _images((3, 16, 16), b=64)
    (_, _), ctx = _run_aug("augment", x, y, dataset="cifar10")
    assert ctx.record["augment_policy"] == "natural"
    (_, _), ctx = _run_aug("augment", x, y, dataset="svhn")
    assert ctx.record["augment_policy"] == "natural"
    (_, _), ctx = _run_aug("augment", x[:, :1], y, dataset="")
    assert ctx.record["augment_policy"] == "digits"
    # natural: every output is a translated (and maybe mirrored) window of the zero-padded input
    (xa, _), _ = _run_aug("augment", x, y, dataset="svhn")
    padded = F.pad(x, (2, 2, 2, 2))

    def windows(i, mirrored):
        src = padded[i].flip(-1) if mirrored else padded[i]
        return [src[:, r:r + 16, c:c + 16] for r in range(5) for c in range(5)]

    assert all(any(torch.equal(xa[i], w) for w in windows(i, False)) for i in range(len(x)))
    (xf, _), _ = _run_aug("augment", x, y, dataset="cifar10")
    mirrored = [not any(torch.equal(xf[i], w) for w in windows(i, False)) for i in range(len(x))]
    assert 10 < sum(mirrored) < 54


def test_random_erasing_erases_rectangles_and_keeps_global_rng():
    x, y = _images((1, 16, 16), b=32)
    x = x * 0.9 + 0.1  # no zero pixels before erasing
    state = torch.get_rng_state()
    (xa, _), _ = _run_aug("random-erasing", x, y, p=1.0, value="0")
    assert torch.equal(torch.get_rng_state(), state)
    for i in range(len(x)):
        zero = xa[i, 0] == 0
        rows, cols = zero.any(1).nonzero()[:, 0], zero.any(0).nonzero()[:, 0]
        assert zero.any() and zero.sum() == len(rows) * len(cols)  # one solid rectangle
        assert 0.02 * 256 - 2 <= zero.sum() <= 0.33 * 256 + 16
        assert torch.equal(xa[i][~zero[None]], x[i][~zero[None]])
    (xn, _), _ = _run_aug("random-erasing", x, y, p=0.0)
    assert torch.equal(xn, x)


def test_random_erasing_fills_with_uniform_noise_by_default_as_the_papers_re_r():
    x, y = _images((1, 16, 16), b=64)
    x = torch.full_like(x, 0.25)  # a flat image: every erased pixel shows
    (xa, _), _ = _run_aug("random-erasing", x, y, p=1.0)
    changed = xa != x
    values = xa[changed]
    assert changed.any() and 0.0 <= float(values.min()) and float(values.max()) <= 1.0
    assert abs(float(values.mean()) - 0.5) < 0.03 and float(values.std()) > 0.25  # U(0, 1): std 0.289
    for i in range(len(x)):  # still one rectangle per image (a U(0,1) draw hits 0.25 almost never)
        rows, cols = changed[i, 0].any(1).nonzero()[:, 0], changed[i, 0].any(0).nonzero()[:, 0]
        assert changed[i, 0].sum() <= len(rows) * len(cols) and changed[i, 0].sum() >= len(rows) * len(cols) - 2
    from imbench.baselines.random_erasing import RandomErasing

    assert RandomErasing(value="0.0").params["value"] == RandomErasing(value=0).params["value"] == "0.0"
    assert RandomErasing(value="0.1234567").params["value"] == "0.1234567"  # no rounding


# ------------------------------------------------------------------ parameters


@pytest.mark.parametrize("name,params", [
    ("cb-loss", {"beta": 1.0}), ("cb-loss", {"beta": -0.1}), ("cb-loss", {"loss": "hinge"}),
    ("cb-loss", {"gamma": -1.0}), ("focal", {"gamma": -0.5}), ("focal", {"alpha": 1.5}),
    ("ldam-drw", {"max_m": 0.0}), ("ldam-drw", {"s": -1.0}), ("ldam-drw", {"beta": 1.0}),
    ("ldam-drw", {"drw_start": 1.5}), ("smote", {"k_neighbors": 0}), ("adasyn", {"n_neighbors": 0}),
    ("borderline-smote", {"m_neighbors": 0}), ("borderline-smote", {"kind": "borderline-3"}),
    ("augment", {"policy": "cutout"}), ("random-erasing", {"p": 1.5}),
    ("random-erasing", {"scale_max": 0.01}), ("random-erasing", {"value": 2.0}),
    ("random-erasing", {"value": "noise"}),
    ("erm", {"lr": 0.1}), ("smote", {"k": 3}), ("cb-loss", {"beta": "abc"}),
])
def test_impossible_parameters_raise_usage_error(name, params):
    with pytest.raises(UsageError):
        create_method(name, **params)


def test_text_parameters_are_coerced():
    m = create_method("ldam-drw", beta="0.99", drw="false", drw_start="0.5")
    assert m.params["beta"] == 0.99 and m.params["drw"] is False and m.params["drw_start"] == 0.5
    assert create_method("smote", k_neighbors="3").params["k_neighbors"] == 3


# ------------------------------------------------------------------ the trainer's call order


@pytest.mark.parametrize("name", BASELINES)
def test_hooks_run_in_trainer_order(name):
    torch.manual_seed(0)
    ctx = make_ctx(epochs=2, dataset="digits")
    method = create_method(name)
    train = method.prepare(make_set(), ctx)
    model = method.adapt_model(TinyNet(), ctx)
    weights = method.sampler(train, ctx)
    assert weights is None or weights.shape == (len(train),)
    loss_fn = method.criterion(ctx) or F.cross_entropy
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(ctx.epochs):
        ctx.epoch = epoch
        method.on_epoch(epoch, ctx)
        for start in range(0, len(train), 16):
            x = train.images[start:start + 16].float() / 255
            y = train.labels[start:start + 16]
            x, y = method.augment((x, y), ctx)
            loss = loss_fn(model(x), y)
            assert torch.isfinite(loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
    json.dumps(ctx.record)  # what methods note must fit in the JSON record


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["class-weighted", "cb-loss", "focal", "ldam-drw", "augment", "random-erasing"])
def test_hooks_on_cuda_match_cpu(name):
    results = []
    for device in (torch.device("cpu"), torch.device("cuda")):
        ctx = make_ctx(epochs=10, dataset="cifar10")
        ctx.device = device
        method = create_method(name)
        loss_fn = method.criterion(ctx) or F.cross_entropy
        if isinstance(loss_fn, nn.Module):
            loss_fn = loss_fn.to(device)
        method.on_epoch(0, ctx)
        method.on_epoch(9, ctx)
        x, y = _images((3, 16, 16))
        x, y = method.augment((x.to(device), y.to(device)), ctx)
        logits, targets = _batch(b=16)
        results.append((x.cpu(), loss_fn(logits.clamp(-1, 1).to(device), targets.to(device)).cpu()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-4)
