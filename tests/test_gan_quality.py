"""Generated-sample quality: the domain feature extractor, per-class FID/KID/GAN-test and the grid."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imbench.data_recipes.imageset import ImageSet
from imbench.data_recipes.sources import load_source
from imbench.gans import features
from imbench.gans.features import cache_key, domain_classifier
from imbench.gans.grid import grid_size, save_grid
from imbench.gans.quality import QUALITY_NOTES, sample_quality
from imbench.tasks.classification import train as trainer
from imbench.testing import tiny_imageset

CPU = torch.device("cpu")
EPOCHS = 6


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gan-quality-cache")


@pytest.fixture(scope="module")
def domain(digits, cache_dir):
    model, hit = domain_classifier(digits.train, device=CPU, cache_dir=cache_dir, epochs=EPOCHS,
                                   fingerprint=digits.info["fingerprint"])
    assert hit is False
    return model


def by_class(images: ImageSet, keep: dict[int, int]) -> ImageSet:
    """The first ``keep[c]`` items of each class c (classes not named: none)."""
    idx = [i for c, k in keep.items() for i in torch.nonzero(images.labels == c).flatten()[:k].tolist()]
    return images.subset(idx)


def test_domain_classifier_is_accurate_and_real_images_score_high_gan_test(digits, domain):
    assert not domain.training
    acc = (trainer.predict(domain, digits.test.images, CPU) == digits.test.labels.numpy()).mean()
    assert acc > 0.85
    q = sample_quality(digits.train, digits.test, domain, device=CPU)
    assert q["gan_test_mean"] > 0.85 and min(q["gan_test_per_class"]) > 0.6
    assert q["n_fake_per_class"] == digits.test.counts() and q["n_real_per_class"] == digits.train.counts()
    assert q["kid_subset_size_per_class"] == [50] * 10
    assert all(isinstance(v, float) for v in q["fid_per_class"] + q["kid_per_class"])
    assert q["quality_notes"] == QUALITY_NOTES and "GAN-test" in QUALITY_NOTES
    assert not any(k.startswith("cas") for k in q)  # GAN-test is not CAS (that one is gans/cas.py)
    json.dumps(q, allow_nan=False)


def test_domain_classifier_keeps_the_class_under_a_grey_background(digits, domain):
    # generators often leave the background a little grey; GAN-test must still see the digit
    # (without the photometric jitter this extractor drops to ~0.75 here; MNIST's to ~0.1)
    shifted = (digits.test.images.int() + 60).clamp(0, 255).to(torch.uint8)
    acc = (trainer.predict(domain, shifted, CPU) == digits.test.labels.numpy()).mean()
    assert acc > 0.9


def test_photometric_jitter_is_seeded_bounded_and_leaves_about_half_unchanged():
    x = torch.rand(400, 1, 8, 8)
    a = features.photometric_jitter(x, torch.Generator().manual_seed(3))
    b = features.photometric_jitter(x, torch.Generator().manual_seed(3))
    c = features.photometric_jitter(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    unchanged = (a == x).flatten(1).all(1).float().mean()
    assert 0.4 < unchanged < 0.6
    assert features.photometric_jitter(x, torch.Generator().manual_seed(3), p=0.0).equal(x)


def test_real_vs_real_is_close_and_noise_is_far(digits, domain):
    perm = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))
    half = len(perm) // 2
    a, b = digits.train.subset(perm[:half]), digits.train.subset(perm[half:])
    noise = ImageSet(torch.randint(0, 256, b.images.shape, generator=torch.Generator().manual_seed(1),
                                   dtype=torch.uint8), b.labels, b.class_names)
    real = sample_quality(a, b, domain, device=CPU)
    fake = sample_quality(a, noise, domain, device=CPU)
    assert fake["fid_mean"] > 10 * real["fid_mean"]
    assert all(f > 5 * r for f, r in zip(fake["fid_per_class"], real["fid_per_class"]))
    assert fake["kid_mean"] > real["kid_mean"] + 0.1
    assert fake["gan_test_mean"] < 0.5 < real["gan_test_mean"]


def test_cached_classifier_is_loaded_without_training(digits, domain, cache_dir, monkeypatch):
    files = list((cache_dir / "features").glob("*.pt"))
    assert len(files) == 1 and not list((cache_dir / "features").glob("*.tmp"))

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(trainer, "fit", no_training)
    again, hit = domain_classifier(digits.train, device=CPU, cache_dir=cache_dir, epochs=EPOCHS,
                                   fingerprint=digits.info["fingerprint"])
    assert hit is True and not again.training
    x = digits.test.images[:64].float() / 255.0
    with torch.no_grad():
        assert torch.equal(again(x), domain(x)) and torch.equal(again.embed(x), domain.embed(x))
    fp = digits.info["fingerprint"]
    keys = {cache_key(fp, EPOCHS, 0, (1, 8, 8), 10), cache_key(fp, EPOCHS + 1, 0, (1, 8, 8), 10),
            cache_key(fp, EPOCHS, 1, (1, 8, 8), 10), cache_key(fp + "x", EPOCHS, 0, (1, 8, 8), 10),
            cache_key(fp, EPOCHS, 0, (3, 8, 8), 10), cache_key(fp, EPOCHS, 0, (1, 8, 8), 9)}
    assert len(keys) == 6 and files[0].stem in keys


def test_parallel_workers_train_one_classifier_and_the_others_load_it(tmp_path, monkeypatch):
    # flock excludes separate open()s even within one process, so threads stand in for workers
    import threading
    import time

    calls = []
    real_fit = trainer.fit

    def slow_fit(*a, **k):
        calls.append(1)
        time.sleep(0.3)  # the other thread arrives while this one trains
        return real_fit(*a, **k)

    monkeypatch.setattr(trainer, "fit", slow_fit)
    train = tiny_imageset(counts=(12, 12))
    hits = []

    def worker():
        hits.append(domain_classifier(train, device=CPU, cache_dir=tmp_path, epochs=1, fingerprint="tiny")[1])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(hits) == [False, True]


def test_no_cache_dir_trains(monkeypatch):
    calls = []
    real_fit = trainer.fit
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    train = tiny_imageset(counts=(12, 12))
    model, hit = domain_classifier(train, device=CPU, cache_dir=None, epochs=1, fingerprint="tiny")
    assert hit is False and calls == [1] and not model.training


def test_small_classes_adapt_kid_and_give_none_fid(digits, domain):
    fake = by_class(digits.test, {0: 5, 1: 1, 3: 20})
    q = sample_quality(digits.train, fake, domain, device=CPU)
    assert q["n_fake_per_class"] == [5, 1, 0, 20, 0, 0, 0, 0, 0, 0]
    assert q["kid_subset_size_per_class"][:4] == [5, None, None, 20]
    assert q["fid_per_class"][0] is not None and q["kid_per_class"][0] is not None
    assert q["fid_per_class"][1] is None and q["kid_per_class"][1] is None and q["gan_test_per_class"][1] is not None
    assert q["fid_per_class"][2] is None and q["gan_test_per_class"][2] is None
    assert q["fid_mean"] == pytest.approx(np.mean([q["fid_per_class"][0], q["fid_per_class"][3]]))
    assert q["gan_test_mean"] == pytest.approx(np.mean([q["gan_test_per_class"][c] for c in (0, 1, 3)]))
    assert sample_quality(digits.train, fake, domain, device=CPU) == q  # KID subsets are seeded
    assert sample_quality(digits.train, fake, domain, device=CPU, kid_subset_max=4)["kid_subset_size_per_class"][3] == 4
    json.dumps(q, allow_nan=False)


def test_empty_fake_and_mismatched_sets(digits, domain):
    q = sample_quality(digits.train, digits.test.subset([]), domain, device=CPU)
    assert q["fid_mean"] is None and q["kid_mean"] is None and q["gan_test_mean"] is None
    assert q["fid_per_class"] == [None] * 10 and q["n_fake_per_class"] == [0] * 10
    json.dumps(q, allow_nan=False)
    rgb = tiny_imageset(counts=(3,) * 10, shape=(3, 8, 8))
    with pytest.raises(ValueError):
        sample_quality(digits.train, rgb, domain, device=CPU)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16)])
def test_save_grid_size_and_determinism(tmp_path, shape):
    import matplotlib.image as mpimg

    real = tiny_imageset(counts=(10, 9, 3), shape=shape, seed=0)
    fake = by_class(tiny_imageset(counts=(10, 2, 0), shape=shape, seed=1), {0: 10, 1: 2})
    a = save_grid(real, fake, tmp_path / "a.png", per_class=4, seed=0)
    b = save_grid(real, fake, tmp_path / "sub" / "b.png", per_class=4, seed=0)
    c = save_grid(real, fake, tmp_path / "c.png", per_class=4, seed=3)
    img = mpimg.imread(a)
    width, height = grid_size(3, shape, per_class=4)
    assert img.shape[:2] == (height, width) and img.shape[2] in (3, 4)
    assert np.array_equal(img, mpimg.imread(b)) and not np.array_equal(img, mpimg.imread(c))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.png", "sub"]  # no temp files
    cell = height // 3
    assert (img[2 * cell + 2: 3 * cell - 2, width // 2 + 2:, :3] == 1.0).all()  # class 2: no fakes, blank
