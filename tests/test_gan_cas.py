"""CAS (train on generated, test on real): the score, its bookkeeping, and its place in prepare."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imbench.benchmarks.plugins import METHODS, load_methods
from imbench.data_recipes.imageset import ImageSet
from imbench.data_recipes.recipes import apply_recipe
from imbench.data_recipes.sources import load_source
from imbench.gans import cyclegan as cyclegan_module
from imbench.gans.base import GenerativeOversampler
from imbench.gans.cas import (CAS_NOTES, class_mean, classification_accuracy_score, per_class_recall,
                              restricted_predict, train_classifier)
from imbench.gans.cyclegan import CycleGANOversampler
from imbench.gans.dcgan import DCGAN
from imbench.gans.features import domain_classifier
from imbench.tasks.classification import train as trainer
from imbench.testing import tiny_context, tiny_imageset

from .plugin_fixtures import NoisyMeans

load_methods()
GENERATIVE = sorted(n for n in METHODS if METHODS.get(n).family == "gan" and METHODS.origin(n) == "builtin"
                    and METHODS.get(n).supports("classification"))
CPU = torch.device("cpu")
EPOCHS = 4
LONGTAIL = [60, 45, 30, 22, 16, 12, 9, 7, 5, 4]  # a digits long tail
N_MAX = LONGTAIL[0]


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


@pytest.fixture(scope="module")
def imbalanced(digits):
    """A long-tailed subset of the digits training split (the 'train' a generator would see)."""
    idx = [i for c, k in enumerate(LONGTAIL) for i in torch.nonzero(digits.train.labels == c).flatten()[:k].tolist()]
    return digits.train.subset(idx)


def pool_draw(pool: ImageSet, labels: torch.Tensor, gen: torch.Generator, shift: int = 0) -> torch.Tensor:
    """For each label c, a random image of class (c + shift) mod K from ``pool``."""
    out = torch.empty((len(labels), *pool.image_shape), dtype=torch.uint8)
    for c in labels.unique().tolist():
        where = torch.nonzero(labels == c).flatten()
        own = torch.nonzero(pool.labels == (c + shift) % pool.num_classes).flatten()
        out[where] = pool.images[own[torch.randint(len(own), (len(where),), generator=gen)]]
    return out


def generated(pool: ImageSet, classes, n: int, mode: str, seed: int = 0) -> ImageSet:
    """n images of each class in ``classes``: real images of the class from ``pool`` ("real"),
    of the next class ("wrong"), or uniform noise ("noise")."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor(classes).repeat_interleave(n)
    if mode == "noise":
        images = torch.randint(0, 256, (len(labels), *pool.image_shape), generator=gen, dtype=torch.uint8)
    else:
        images = pool_draw(pool, labels, gen, shift=1 if mode == "wrong" else 0)
    return ImageSet(images, labels, list(pool.class_names), torch.ones(len(labels), dtype=torch.bool))


def cas(fake, test, classes, seed=0, reference=None):
    return classification_accuracy_score(fake, test, classes, device=CPU, epochs=EPOCHS, init_seed=seed,
                                         seed=seed + 1, reference=reference)


# ------------------------------------------------------------------------------ the score itself
def test_real_images_score_high_wrong_class_and_noise_score_low(digits):
    # the "generators" draw from the balanced source training split, never from the test split
    classes = list(range(10))
    real = cas(generated(digits.train, classes, N_MAX, "real"), digits.test, classes)
    wrong = cas(generated(digits.train, classes, N_MAX, "wrong"), digits.test, classes)
    noise = cas(generated(digits.train, classes, N_MAX, "noise"), digits.test, classes)
    assert real["cas_mean"] > 0.8 and min(real["cas_per_class"]) > 0.5
    assert wrong["cas_mean"] < 0.05
    assert noise["cas_mean"] < 0.25  # chance: 0.1
    assert real["cas_train_per_class"] == [N_MAX] * 10


def test_per_class_recall_and_mean_by_hand():
    pred = np.array([0, 1, 1, 2, 2, 2, 0])
    labels = np.array([0, 0, 1, 2, 2, 1, 3])
    assert per_class_recall(pred, labels, 5, [0, 2, 4]) == [0.5, None, 1.0, None, None]  # class 4: no test items
    assert per_class_recall(pred, labels, 5, [1, 3]) == [None, 0.5, None, 0.0, None]
    assert class_mean([0.5, None, 1.0]) == 0.75 and class_mean([None, None]) is None


def test_restricted_predictions_by_hand():
    class Fixed(torch.nn.Module):
        def forward(self, x):  # logits by image: the largest for class 3, then 1, then 0
            return torch.tensor([[2.0, 5.0, 0.0, 9.0]]).repeat(len(x), 1)

    images = torch.zeros((3, 1, 4, 4), dtype=torch.uint8)
    assert restricted_predict(Fixed(), images, CPU, [0, 1, 2, 3]).tolist() == [3, 3, 3]
    assert restricted_predict(Fixed(), images, CPU, [0, 1, 2]).tolist() == [1, 1, 1]
    assert restricted_predict(Fixed(), images, CPU, [2, 0], batch_size=2).tolist() == [0, 0, 0]


def test_non_generatable_classes_are_left_out_none_and_out_of_the_mean(digits):
    classes = [2, 5, 9]  # e.g. a per-class generator trained for these only
    fake = generated(digits.train, list(range(10)), N_MAX, "real")  # items of other classes are ignored
    reference, _ = domain_classifier(digits.train, device=CPU, cache_dir=None, epochs=EPOCHS,
                                     fingerprint=digits.info["fingerprint"])
    out = cas(fake, digits.test, classes, reference=reference)
    assert set(out) == {"cas_per_class", "cas_mean", "cas_classes", "cas_train_per_class",
                        "cas_reference_per_class", "cas_reference_mean", "cas_notes"}
    assert out["cas_classes"] == classes and out["cas_notes"] == CAS_NOTES
    assert out["cas_train_per_class"] == [N_MAX if c in classes else 0 for c in range(10)]
    assert [c for c, v in enumerate(out["cas_per_class"]) if v is not None] == classes
    assert [c for c, v in enumerate(out["cas_reference_per_class"]) if v is not None] == classes
    assert out["cas_mean"] == pytest.approx(np.mean([out["cas_per_class"][c] for c in classes]))
    assert out["cas_reference_mean"] == pytest.approx(np.mean([out["cas_reference_per_class"][c] for c in classes]))
    assert out["cas_mean"] > 0.9 and out["cas_reference_mean"] > 0.9  # a 3-way problem
    # the recorded recalls are the hand-computed recalls of the same (seeded) classifier,
    # trained on the generated images of the three classes only
    keep = torch.nonzero(torch.isin(fake.labels, torch.tensor(classes))).flatten()
    model = train_classifier(fake.subset(keep), device=CPU, epochs=EPOCHS, init_seed=0, seed=1)
    pred = restricted_predict(model, digits.test.images, CPU, classes)
    labels = digits.test.labels.numpy()
    assert set(pred.tolist()) <= set(classes)
    assert out["cas_per_class"] == [float(np.mean(pred[labels == c] == c)) if c in classes else None
                                    for c in range(10)]
    json.dumps(out, allow_nan=False)


def test_same_seed_same_numbers_and_the_global_rng_is_left_alone(digits):
    classes = [1, 3, 4]
    fake = generated(digits.train, classes, N_MAX, "real")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = cas(fake, digits.test, classes, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert cas(fake, digits.test, classes, seed=7) == a


def test_fewer_than_two_classes_trains_nothing(monkeypatch):
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    train = tiny_imageset(counts=(6, 6))
    for classes in ([], [1]):
        out = classification_accuracy_score(train, train, classes, device=CPU, epochs=1, init_seed=0, seed=0)
        assert out["cas_mean"] is None and out["cas_per_class"] == [None, None] and out["cas_classes"] == []


# ------------------------------------------------------------------------------ inside prepare
class HeldOut(GenerativeOversampler):
    """A 'generator' that returns real images of the requested class (``shift`` 0) or of another
    class, drawn from a pool the test split does not contain."""

    name = "held-out-pool"
    defaults = {**GenerativeOversampler.defaults, "shift": 0}
    pool: ImageSet | None = None

    def build(self, image_shape, num_classes):
        return torch.nn.Module()

    def fit(self, generator, train, ctx, budget):
        pass

    def sample(self, generator, labels, train, ctx, gen):
        return pool_draw(self.pool, labels, gen, shift=int(self.params["shift"]))

    def generatable_classes(self, train):
        return [c for c in super().generatable_classes(train) if c != 0]  # a per-class generator of 1..9


def digits_ctx(digits, train, test):
    ctx = tiny_context(train, gan={"steps": 1, "batch_size": 8, "lr": 1e-3, "feature_epochs": EPOCHS})
    ctx.source, ctx.test = digits, test
    ctx.data_key = {"fingerprint": digits.info["fingerprint"]}
    return ctx


def test_prepare_records_cas_against_the_reference(digits, imbalanced, monkeypatch):
    HeldOut.pool = digits.train
    seen = []
    real_fit = trainer.fit
    monkeypatch.setattr(trainer, "fit", lambda model, data, *a, **k: seen.append(data) or real_fit(model, data, *a, **k))
    ctx = digits_ctx(digits, imbalanced, digits.test)
    HeldOut().prepare(imbalanced, ctx)
    _, cas_set = seen  # the domain classifier (no cache), then the CAS classifier
    assert cas_set.synthetic.all() and cas_set.counts() == [0] + [N_MAX] * 9  # no real image: no "looks real" shortcut
    m = ctx.metrics
    assert m["cas_classes"] == list(range(1, 10)) and m["cas_per_class"][0] is None
    assert m["cas_mean"] > 0.8 and m["cas_reference_mean"] > 0.8
    assert m["cas_train_per_class"] == [0] + [N_MAX] * 9
    assert "gan_test_mean" in m and "cas_train_s" in ctx.record and ctx.record["cas_train_s"] > 0
    wrong = digits_ctx(digits, imbalanced, digits.test)
    HeldOut(shift=1).prepare(imbalanced, wrong)
    assert wrong.metrics["cas_mean"] < 0.05 and wrong.metrics["gan_test_mean"] < 0.2
    json.dumps({**m, **ctx.record}, allow_nan=False)


def test_a_relabelling_recipe_gets_cas_without_the_domain_classifier(digits):
    imb = apply_recipe(digits, "binary", {"ir": 10}, 0)
    ctx = digits_ctx(digits, imb.train, imb.test)
    NoisyMeans().prepare(imb.train, ctx)
    assert "relabels" in ctx.record["sample_quality_skipped"] and "fid_mean" not in ctx.metrics
    assert ctx.metrics["cas_classes"] == [0, 1] and ctx.metrics["cas_mean"] > 0.5
    assert ctx.metrics["cas_reference_mean"] is None and ctx.metrics["cas_reference_per_class"] == [None, None]


def test_no_test_split_records_none_and_trains_nothing(monkeypatch):
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    train = tiny_imageset(counts=(24, 8, 3))
    ctx = tiny_context(train, gan={"steps": 1, "batch_size": 8, "lr": 1e-3, "feature_epochs": 1})
    METHODS.get("cgan")().prepare(train, ctx)
    assert ctx.test is None and ctx.metrics["cas_mean"] is None and ctx.metrics["cas_per_class"] == [None] * 3
    assert ctx.metrics["cas_reference_mean"] is None and "cas_train_s" not in ctx.record


@pytest.mark.parametrize("name", GENERATIVE)
def test_cas_samples_every_generatable_class_and_leaves_the_oversampled_set_alone(name):
    train = tiny_imageset(counts=(24, 8, 3), seed=0)
    test = tiny_imageset(counts=(6, 6, 6), seed=1)
    gan = {"steps": 30, "batch_size": 16, "lr": 2.0e-4, "feature_epochs": 1}
    without = tiny_context(train, gan=gan)
    plain = METHODS.get(name)().prepare(train, without)
    with_cas = tiny_context(train, gan=gan)
    with_cas.test = test
    method = METHODS.get(name)()
    out = method.prepare(train, with_cas)
    assert torch.equal(out.images, plain.images) and torch.equal(out.labels, plain.labels)
    assert torch.equal(out.synthetic, plain.synthetic)
    classes = method.generatable_classes(train)
    m = with_cas.metrics
    assert m["cas_classes"] == classes and m["cas_train_per_class"] == [24 if c in classes else 0 for c in range(3)]
    assert [c for c, v in enumerate(m["cas_per_class"]) if v is not None] == classes
    # sampling for CAS leaves no notes of its own: the records differ only by the CAS timing
    assert {k: v for k, v in with_cas.record.items() if k not in ("cas_train_s", "generator_train_s")} == \
        {k: v for k, v in without.record.items() if k != "generator_train_s"}


# ------------------------------------------------------------------------------ what each method can generate
def test_conditional_generators_generate_every_class_with_images():
    train = tiny_imageset(counts=(24, 0, 8, 3))
    for name in ("cgan", "acgan", "wgan-gp", "bagan", "cvae", "deepsmote"):
        assert METHODS.get(name)().generatable_classes(train) == [0, 2, 3], name


def _fit(method, train, ctx, budget):
    torch.manual_seed(0)
    net = method.build(train.image_shape, train.num_classes)
    method.fit(net, train, ctx, budget)
    return net.eval()


def test_dcgan_generates_exactly_the_classes_it_trains():
    train = tiny_imageset(counts=(24, 8, 24, 3))
    ctx = tiny_context(train)
    net = _fit(DCGAN(), train, ctx, {"steps": 4, "batch_size": 8, "lr": 1e-3})
    classes = DCGAN().generatable_classes(train)
    assert classes == [1, 3] == torch.nonzero(net.trained).flatten().tolist()
    with pytest.raises(ValueError, match="no trained generator"):
        DCGAN().sample(net, torch.tensor([0]), train, ctx, torch.Generator())


@pytest.mark.parametrize("source,counts,expected", [("largest", (24, 8, 24, 3, 0), [1, 3]),
                                                    ("all-majority", (24, 10, 6, 3), [1, 2, 3])])
def test_cyclegan_generates_exactly_the_classes_it_translates_into(source, counts, expected, monkeypatch):
    seen = set()
    real_losses = cyclegan_module.generator_losses

    def spy(net, d_t, d_s, x, s, y, c, *rest):
        seen.update(c.tolist())
        return real_losses(net, d_t, d_s, x, s, y, c, *rest)

    monkeypatch.setattr(cyclegan_module, "generator_losses", spy)
    train = tiny_imageset(counts=counts)
    method = CycleGANOversampler(source=source, width=8, res_blocks=0)
    _fit(method, train, tiny_context(train), {"steps": 20, "batch_size": 16, "lr": 1e-3})
    assert method.generatable_classes(train) == expected == sorted(seen)
