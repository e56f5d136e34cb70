"""Per-class quality of generated samples: FID, KID and GAN-test on a domain classifier.

Reproduces FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) per class, with
torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` fed by the 128-d pooled
features of the domain classifier (``gans.features``) instead of Inception-v3 (no downloaded
weights).  KID's subset size is shrunk to the smaller side of a class (torchmetrics raises
otherwise); FID needs >= 2 samples per side.

GAN-test (Shmelkov, Schmid & Alahari, ECCV 2018) is the domain classifier, trained on real
data, scored on the generated images: per class, the fraction of the class's samples it assigns
to that class.  It measures whether samples look like their class (precision-like); a generator
that collapses onto a few recognisable images still scores high.  Its counterpart CAS (train on
generated, test on real; Ravuri & Vinyals 2019, Shmelkov's GAN-train) is ``cas.py``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ..data_recipes.imageset import ImageSet

QUALITY_NOTES = ("FID/KID on the domain classifier's 128-d penultimate features (no Inception "
                 "weights); FID from < 2048 samples is biased upward — compare only at equal n; "
                 "gan_test = the domain classifier's accuracy on the generated images (GAN-test, "
                 "Shmelkov et al. 2018), not CAS")


class GivenFeatures(torch.nn.Module):
    """torchmetrics "feature extractor" for features computed beforehand: the identity.

    Each image is embedded once (``embed``) and the same features feed FID, KID and GAN-test.
    ``num_features`` stops torchmetrics probing with a 3x299x299 dummy image.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@torch.no_grad()
def embed(classifier: torch.nn.Module, images: torch.Tensor, device, batch_size: int = 512) -> torch.Tensor:
    """``classifier.embed`` of uint8 images (N, C, H, W), float32 on the CPU."""
    out = [classifier.embed(images[s:s + batch_size].to(device).float().div_(255.0)).cpu()
           for s in range(0, len(images), batch_size)]
    return torch.cat(out)


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _finite(x: torch.Tensor) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def sample_quality(real: ImageSet, fake: ImageSet, classifier: torch.nn.Module, *, device,
                   kid_subset_max: int = 50, kid_subsets: int = 100, seed: int = 0) -> dict:
    """FID, KID and GAN-test per class of ``fake`` against the ``real`` items of the same class.

    Returns a JSON-serialisable dict (plain floats, ints, lists, None); per-class lists have one
    entry per class, None where the class was not generated or has too few samples (FID and
    KID need >= 2 on each side).  KID subsets are drawn from a generator seeded by ``seed``.
    """
    if real.image_shape != fake.image_shape or real.num_classes != fake.num_classes:
        raise ValueError(f"real {real.image_shape}/{real.num_classes} classes and fake "
                         f"{fake.image_shape}/{fake.num_classes} classes do not match")
    device = torch.device(device)
    K = fake.num_classes
    n_real, n_fake = real.counts(), fake.counts()
    out: dict = {"fid_per_class": [None] * K, "fid_mean": None, "kid_per_class": [None] * K,
                 "kid_std_per_class": [None] * K, "kid_mean": None, "gan_test_per_class": [None] * K,
                 "gan_test_mean": None, "n_fake_per_class": n_fake, "n_real_per_class": n_real,
                 "kid_subset_size_per_class": [None] * K, "quality_notes": QUALITY_NOTES}
    if len(fake) == 0:
        return out
    was_training = classifier.training
    classifier.eval()
    fake_feats = embed(classifier, fake.images, device)
    with torch.no_grad():  # GAN-test: the classifier's head on the same features (= classifier(images))
        pred = classifier.classifier(fake_feats.to(device)).argmax(1).cpu().numpy()
    feats = GivenFeatures(fake_feats.shape[1])
    fake_labels = fake.labels.numpy()
    for c in range(K):
        if n_fake[c] == 0:
            continue
        out["gan_test_per_class"][c] = float(np.mean(pred[fake_labels == c] == c))
        if n_real[c] < 2 or n_fake[c] < 2:
            continue
        r_feat = embed(classifier, real.images[real.labels == c], device).double()
        f_feat = fake_feats[fake.labels == c].double()
        fid = FrechetInceptionDistance(feature=feats, reset_real_features=True)
        fid.set_dtype(torch.float64)
        fid.update(r_feat, real=True)
        fid.update(f_feat, real=False)
        out["fid_per_class"][c] = _finite(fid.compute().clamp_min(0.0))  # tiny negatives: round-off
        m = min(int(kid_subset_max), n_real[c], n_fake[c])
        with warnings.catch_warnings():  # "will save all extracted features": one class is small enough
            warnings.filterwarnings("ignore", message=".*save all extracted features.*")
            kid = KernelInceptionDistance(feature=feats, subsets=kid_subsets, subset_size=m)
        kid.set_dtype(torch.float64)
        kid.update(r_feat, real=True)
        kid.update(f_feat, real=False)
        with torch.random.fork_rng(devices=[]):  # KID draws subsets from the global CPU RNG
            torch.random.default_generator.manual_seed(seed * 1_000_003 + c)
            k_mean, k_std = kid.compute()
        out["kid_per_class"][c], out["kid_std_per_class"][c] = _finite(k_mean), _finite(k_std)
        out["kid_subset_size_per_class"][c] = m
    classifier.train(was_training)
    out["fid_mean"] = _mean(out["fid_per_class"])
    out["kid_mean"] = _mean(out["kid_per_class"])
    out["gan_test_mean"] = _mean(out["gan_test_per_class"])
    return out
