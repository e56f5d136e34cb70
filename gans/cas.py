"""CAS, the classification accuracy score of a generator: train on generated, test on real.

Reproduces CAS (Ravuri & Vinyals, "Classification Accuracy Score for Conditional Generative
Models", NeurIPS 2019; "GAN-train" in Shmelkov, Schmid & Alahari, ECCV 2018): a fresh
classifier is trained on generated images and its per-class recall is measured on *real*
held-out images.  The reverse (a real-data classifier scored on generated images, GAN-test) is
``gan_test_*`` in ``quality.py``.  A generator that collapses onto a few recognisable images
scores a high GAN-test and a low CAS.

Design decisions (the suite's own, written down here):

* **Training set: generated images only, ``n_max`` per generatable class.** For every class the
  method can generate (``generatable_classes``: every class with training images for the
  conditional generators, the minority classes for dcgan / cyclegan), ``n_max`` freshly sampled
  images, ``n_max`` being the largest class count of the imbalanced training split the
  generator saw.  Ravuri & Vinyals train on a generated set the size of the real training set,
  sampled class-balanced; ``n_max`` per class is the balanced counterpart of the imbalanced
  split, the size an oversampled class has under ``blend=full``, so the score does not depend
  on how few real images the recipe left in a class.  The images come from their own random
  stream (``ctx.generator("<method>-cas")``), so the oversampled training set is the same with
  or without CAS.
* **Classes a method cannot generate are left out**, of the training set and of the scoring:
  predictions are restricted to the generatable classes (an arg-max over their logits) and
  only their test images are scored, so CAS is a ``len(cas_classes)``-way score (chance =
  1 / that).  Filling those classes with their real training images instead gives the
  classifier a shortcut: "looks real" means "a non-generatable class".  Measured on digits
  IR 50 (quick budget): with the 122 real zeros beside dcgan's generated 1-9, 90 % of the real
  test images of 1-9 were classified as 0 and CAS was 0.09; trained on the generated 1-9 only,
  0.50.  Hand-made: real digits with a +40/255 grey offset as the "generated" 1-9 scored 0.37
  beside real zeros, 0.92 on their own.  With fewer than two generatable classes there is
  nothing to classify: CAS is None.
* **Classifier.** A fresh ``small-cnn`` normalised with the CAS training set's per-channel
  mean / std, trained by the classification trainer with plain cross-entropy
  (``PlainCrossEntropy``: no hooks, so no photometric jitter, and a budget without
  ``augment``) for the profile's ``feature_epochs`` with the domain classifier's SGD budget
  (``features.budget``).  No jitter: CAS has to charge every way in which generated images
  differ from real ones, a grey background included, and the jitter was put into the domain
  classifier to make it blind to exactly that.  Initialisation is seeded (``torch.manual_seed``
  from ``"<method>-cas-init"``) and so is the batch order (the trainer's stream of a context
  seeded from ``"<method>-cas-train"``): the numbers are deterministic for a cell's seed.  The
  global RNG is restored afterwards.
* **Score.** The recall of each generatable class on the real test split (the cell's
  evaluation split); ``cas_mean`` is their mean, None for the other classes.  Ravuri & Vinyals
  report top-1 accuracy on ImageNet's balanced validation set; the class-mean recall is that
  number on a balanced test split and does not let large test classes dominate otherwise.
* **Reference.** ``cas_reference_*``: the domain classifier of ``features.py`` (a small-cnn
  trained on the balanced real source split, with jitter) scored the same way (same test
  images, predictions restricted to the same classes): a real-data ceiling that costs
  inference only.  It is a reference, not a paired control: its training data (all real, more
  of it) and its jitter differ from the CAS classifier's.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..benchmarks.contract import Context, Method
from ..data_recipes.imageset import ImageSet
from ..tasks.classification import train as trainer  # looked up at call time (tests patch fit)
from ..tasks.classification.models import build_model
from .features import budget as classifier_budget
from .base import seeded_streams

MODEL = "small-cnn"
CAS_NOTES = ("CAS (Ravuri & Vinyals 2019, = GAN-train): small-cnn trained on n_max generated images of each "
             "generatable class only, recall on the real test split among those classes (chance = "
             "1/len(cas_classes)); reference = the domain classifier (real, balanced) scored the same way")


class PlainCrossEntropy(Method):
    """The CAS classifier's training: the trainer's defaults (cross-entropy, uniform batches)."""

    name = "cas-classifier"
    tracks = ("classification",)
    summary = "plain cross-entropy training of the CAS classifier (train on generated, test on real)"


def train_classifier(data: ImageSet, *, device, epochs: int, init_seed: int, seed: int) -> torch.nn.Module:
    """A fresh small-cnn trained on ``data`` (in eval mode); the global RNG is left as it was."""
    device = torch.device(device)
    x = data.images.float().div(255.0)
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del x
    C, H, W = data.image_shape
    ctx = Context(track="classification", class_names=list(data.class_names), instance_counts=data.counts(),
                  minority=[], seed=int(seed), device=device, budget=classifier_budget(epochs), dataset="cas",
                  quiet=True)
    with seeded_streams(init_seed, device):
        model = build_model(MODEL, in_channels=C, num_classes=data.num_classes, image_size=(H, W),
                            mean=mean, std=std).to(device)
        trainer.fit(model, data, PlainCrossEntropy(), ctx, progress=False)
    return model.eval()


@torch.no_grad()
def restricted_predict(model: torch.nn.Module, images: torch.Tensor, device, classes: Sequence[int],
                       batch_size: int = 512) -> np.ndarray:
    """Predictions for uint8 ``images`` among ``classes`` only (the arg-max over their logits)."""
    model.eval()
    device = torch.device(device)
    keep = torch.tensor(sorted(int(c) for c in classes), dtype=torch.int64)
    out = []
    for s in range(0, len(images), batch_size):
        logits = model(images[s:s + batch_size].to(device).float().div_(255.0)).cpu()
        out.append(keep[logits[:, keep].argmax(1)])
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def per_class_recall(pred, labels, num_classes: int, classes: Sequence[int]) -> list[float | None]:
    """Recall of each class in ``classes`` (None for the others and for classes without items)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    out: list[float | None] = [None] * int(num_classes)
    for c in classes:
        mask = labels == c
        if mask.any():
            out[c] = float(np.mean(pred[mask] == c))
    return out


def class_mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def empty_cas(num_classes: int) -> dict:
    """The CAS keys when CAS is not computed (no test split, fewer than two generatable classes)."""
    none = [None] * int(num_classes)
    return {"cas_per_class": list(none), "cas_mean": None, "cas_classes": [], "cas_train_per_class": None,
            "cas_reference_per_class": list(none), "cas_reference_mean": None, "cas_notes": CAS_NOTES}


def classification_accuracy_score(generated: ImageSet, test: ImageSet, classes: Sequence[int], *, device,
                                  epochs: int, init_seed: int, seed: int,
                                  reference: torch.nn.Module | None = None) -> dict:
    """CAS per class of ``generated`` (see the module docstring), as JSON-serialisable metrics.

    ``generated`` holds the generated images of ``classes`` (its items of other classes are
    ignored), ``test`` the real evaluation split in the same label space; ``reference``
    (optional) a classifier of that label space, scored the same way.
    """
    if generated.num_classes != test.num_classes:
        raise ValueError(f"generated / test have {generated.num_classes} / {test.num_classes} classes")
    classes = sorted({int(c) for c in classes})
    out = empty_cas(test.num_classes)
    if len(classes) < 2:
        return out
    wanted = torch.zeros(generated.num_classes, dtype=torch.bool)
    wanted[classes] = True
    data = generated.subset(torch.nonzero(wanted[generated.labels]).flatten())
    model = train_classifier(data, device=device, epochs=epochs, init_seed=init_seed, seed=seed)
    labels = test.labels.numpy()
    pred = restricted_predict(model, test.images, device, classes)
    out["cas_per_class"] = per_class_recall(pred, labels, test.num_classes, classes)
    out["cas_mean"] = class_mean(out["cas_per_class"])
    out["cas_classes"] = classes
    out["cas_train_per_class"] = data.counts()
    if reference is not None:
        was_training = reference.training
        pred = restricted_predict(reference, test.images, device, classes)
        reference.train(was_training)
        out["cas_reference_per_class"] = per_class_recall(pred, labels, test.num_classes, classes)
        out["cas_reference_mean"] = class_mean(out["cas_reference_per_class"])
    return out
