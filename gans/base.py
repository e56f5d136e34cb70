"""The shared machinery of every generative oversampler (GANs, VAEs, DeepSMOTE).

A subclass says how to ``build`` its generator (an ``nn.Module`` whose parameters and buffers
hold everything sampling needs), how to ``fit`` it on the imbalanced training split, and how to
``sample`` class-conditional images from it. ``prepare`` then does the rest, the same way for
every method:

1. how many images each class gets: ``blend=full`` fills every class up to the largest count;
   ``blend=F`` (0 < F <= 1) fills a fraction F of each class's deficit (the survey's open
   question on the proportion of synthetic images);
2. the generator comes from the on-disk cache when the same (data, recipe, seed, method
   parameters except blend, GAN budget, code version) was trained before, else it is trained
   and stored; the record says ``generator_cache: hit|miss|off`` and the training seconds;
3. samples are checked: non-finite losses raise :class:`DivergenceError`, a collapsed class
   (mean pairwise distance of its samples < ``COLLAPSE_RATIO`` of the real class's) raises
   :class:`CollapseError`; either way the cell is recorded as failed with the reason;
4. sample quality (per-class FID, KID and GAN-test on the domain classifier; see ``quality.py``)
   goes under the record's ``metrics`` and a PNG grid (real | generated, one row per class) beside
   the record, under ``<out>/samples/``;
5. CAS (train on generated, test on real; see ``cas.py``): a fresh classifier trained on
   ``max(counts)`` newly sampled images of each class in ``generatable_classes`` only, scored
   per class on the cell's test split (``ctx.test``; None values outside the runner). Its
   samples come from their own random stream, so the oversampled training set is the same
   with or without it; ``cas_train_s`` in the record is the whole step (sampling included).

GAN budgets are data: the ``gan`` block of the track's profile (``steps``, ``batch_size``,
``lr``, ``feature_epochs``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..data_recipes.imageset import ImageSet
from ..benchmarks.contract.track import DivergenceError
from .cache_lock import cache_lock

CODE_VERSION = "gans-1"
COLLAPSE_RATIO = 0.05


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``: zero the gradients, back-propagate, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@contextlib.contextmanager
def frozen(*nets: torch.nn.Module):
    """Switch off the parameter gradients of ``nets`` inside the block (a discriminator while
    the generator's loss back-propagates through it), back on afterwards."""
    for net in nets:
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net in nets:
            net.requires_grad_(True)


@contextlib.contextmanager
def seeded_streams(seed: int, device):
    """A block whose random streams start from ``seed`` -- the CPU generator and, on CUDA, the
    device's -- and are restored afterwards, so the caller's (the trained model's) streams are
    left as they were."""
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        yield


class CollapseError(RuntimeError):
    """The generator's samples of a class are (nearly) all the same image."""


def deficits(counts: list[int], blend: str) -> list[int]:
    """Synthetic images per class: the deficit to the largest class, or a fraction of it."""
    top = max(counts)
    if blend == "full":
        return [top - n for n in counts]
    frac = float(blend)
    return [int(frac * (top - n)) for n in counts]


def canonical_blend(blend) -> str:
    """One spelling per setting: ``full``, or the fraction as ``%g`` (``.5``, ``0.50`` -> ``0.5``);
    a fraction of 1 fills the whole deficit, which is ``full``."""
    text = str(blend).strip()
    if text == "full":
        return text
    frac = float(text)
    return "full" if frac == 1.0 else f"{frac:g}"


def check_blend(method: str, blend: str) -> None:
    if blend == "full":
        return
    try:
        frac = float(blend)
    except ValueError:
        raise UsageError(f"method {method!r}: blend must be 'full' or a fraction in (0, 1], got {blend!r}") from None
    if not 0.0 < frac <= 1.0:
        raise UsageError(f"method {method!r}: blend must be 'full' or a fraction in (0, 1], got {blend!r}")


class GenerativeOversampler(Method, ABC):
    """Base class of the generative oversampling methods (family ``gan``)."""

    family = "gan"
    tracks = ("classification",)
    defaults = {"blend": "full"}
    # parameters that change how many / which samples are drawn or used, not the generator:
    # left out of the generator cache key (a rerun with another blend reuses the trained GAN)
    sampling_only: tuple[str, ...] = ("blend",)

    def check(self) -> None:
        check_blend(self.name, str(self.params["blend"]))
        self.params["blend"] = canonical_blend(self.params["blend"])

    # ------------------------------------------------------------ to implement
    @abstractmethod
    def build(self, image_shape: tuple[int, int, int], num_classes: int) -> torch.nn.Module:
        """A fresh, untrained generator module for images of ``image_shape``."""

    @abstractmethod
    def fit(self, generator: torch.nn.Module, train: ImageSet, ctx: Context, budget: dict) -> None:
        """Train ``generator`` in place on the imbalanced ``train`` split (seeded from ctx)."""

    @abstractmethod
    def sample(self, generator: torch.nn.Module, labels: torch.Tensor, train: ImageSet, ctx: Context,
               gen: torch.Generator) -> torch.Tensor:
        """uint8 images (len(labels), C, H, W), one per requested label."""

    # ------------------------------------------------------------ helpers for subclasses
    @staticmethod
    def gan_budget(ctx: Context) -> dict:
        budget = ctx.budget.get("gan")
        if not budget:
            raise UsageError(f"the profile has no 'gan' budget for track {ctx.track!r}")
        return dict(budget)

    @staticmethod
    def progress(ctx: Context, total: int, desc: str):
        return tqdm(total=total, desc=f"  {desc}", leave=False, disable=ctx.quiet, unit="it")

    def require(self, lo: float, *keys: str, strict: bool = False) -> None:
        """UsageError unless every parameter in ``keys`` is >= ``lo`` (> ``lo`` when ``strict``)."""
        for key in keys:
            value = float(self.params[key])
            if not (value > lo if strict else value >= lo):
                raise UsageError(f"method {self.name!r}: {key} must be {'>' if strict else '>='} "
                                 f"{lo:g}, got {self.params[key]}")

    @staticmethod
    def check_finite(name: str, step: int, **losses: torch.Tensor) -> None:
        for key, value in losses.items():
            if not torch.isfinite(value).all():
                raise DivergenceError(f"{name}: {key} loss became {float(value)} at step {step}")

    # ------------------------------------------------------------ the hook
    def prepare(self, train: ImageSet, ctx: Context) -> ImageSet:
        want = deficits(train.counts(), self.params["blend"])
        budget = self.gan_budget(ctx)
        generator = self._generator(train, ctx, budget)
        labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(want)])
        generator.eval()
        fake_set = self._draw(generator, labels, train, ctx, ctx.generator(f"{self.name}-sample"))
        check_collapse(self.name, train, fake_set)
        ctx.note("synthetic_per_class", want)
        self._assess(generator, train, fake_set, ctx, budget)
        return train.concat(fake_set.images, labels)

    def generator_updates(self, budget: dict, train: ImageSet) -> int:
        """The generator's optimizer updates a fit makes (noted in the record): the ``gan``
        budget's ``steps`` for every family (each with its critic's updates: ``n_critic`` for
        wgan-gp); a method that trains one generator per class multiplies them by its classes."""
        return int(budget["steps"])

    def generatable_classes(self, train: ImageSet) -> list[int]:
        """The classes ``sample`` can generate once fitted on ``train`` (CAS scores these).

        Default, for the conditional generators: every class with at least one training image
        (each was learned; bagan and deepsmote cannot sample a class without one). A method
        that trains for some classes only (dcgan, cyclegan) returns exactly those.
        """
        return [c for c, n in enumerate(train.counts()) if n > 0]

    def _draw(self, generator: torch.nn.Module, labels: torch.Tensor, train: ImageSet, ctx: Context,
              gen: torch.Generator) -> ImageSet:
        """``sample`` one image per label (no gradients), checked, as a synthetic ImageSet."""
        with torch.no_grad():
            fake = torch.as_tensor(self.sample(generator, labels, train, ctx, gen))
        if fake.dtype != torch.uint8 or fake.shape != (len(labels), *train.image_shape):
            raise RuntimeError(f"{self.name}: sample returned {fake.dtype} {tuple(fake.shape)}, expected uint8 "
                               f"{(len(labels), *train.image_shape)}")
        return ImageSet(fake.cpu(), labels, list(train.class_names), torch.ones(len(labels), dtype=torch.bool))

    def _cache_path(self, train: ImageSet, ctx: Context, budget: dict) -> Path | None:
        if ctx.cache_dir is None:
            return None
        # code version: the source of every module of the generative package (a change to a
        # shared network file invalidates the generators built from it) and of the method's own
        # module (a plugin's)
        code = hashlib.sha256()
        files = sorted(Path(__file__).parent.glob("*.py"))
        own = inspect.getsourcefile(type(self))
        if own and Path(own).resolve() not in [f.resolve() for f in files]:
            files.append(Path(own))
        for f in files:
            code.update(f.read_bytes())
        key = {"method": self.name, "params": {k: v for k, v in self.params.items() if k not in self.sampling_only},
               "data": ctx.data_key, "seed": ctx.seed, "counts": train.counts(), "shape": list(train.image_shape), "budget": budget,
               "code": [CODE_VERSION, code.hexdigest()]}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        return Path(ctx.cache_dir) / "generators" / f"{self.name}-{digest}.pt"

    def _generator(self, train: ImageSet, ctx: Context, budget: dict) -> torch.nn.Module:
        torch.manual_seed(ctx._seed_for(f"{self.name}-init"))
        generator = self.build(train.image_shape, train.num_classes).to(ctx.device)
        path = self._cache_path(train, ctx, budget)
        ctx.note("generator_updates", self.generator_updates(budget, train))  # trained now or from the cache
        with cache_lock(path):  # parallel workers: one trains, the others wait and load it
            if path is not None and path.exists():
                blob = torch.load(path, map_location=ctx.device, weights_only=True)
                generator.load_state_dict(blob["state"])
                ctx.note("generator_cache", "hit")
                ctx.note("generator_train_s", 0.0)
                ctx.note("generator_train_s_original", float(blob["train_s"]))
                return generator
            torch.manual_seed(ctx._seed_for(f"{self.name}-fit"))
            start = time.perf_counter()
            generator.train()
            self.fit(generator, train, ctx, budget)
            seconds = time.perf_counter() - start
            ctx.note("generator_cache", "miss" if path is not None else "off")
            ctx.note("generator_train_s", seconds)
            if path is not None:
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save({"state": generator.state_dict(), "train_s": seconds}, tmp)
                os.replace(tmp, path)
        return generator

    def _assess(self, generator: torch.nn.Module, train: ImageSet, fake: ImageSet, ctx: Context,
                budget: dict) -> None:
        from .features import domain_classifier
        from .grid import save_grid
        from .quality import sample_quality

        epochs = int(budget.get("feature_epochs", 15))
        classifier = None
        # the domain classifier speaks the source's labels: of no use where the recipe relabels (binary)
        same_labels = ctx.source is not None and list(ctx.source.train.class_names) == list(train.class_names)
        if ctx.source is not None and not same_labels:
            ctx.note("sample_quality_skipped", "the recipe relabels the source's classes; FID/KID/GAN-test "
                     "and the CAS reference need the domain classifier of the source's labels")
        if same_labels and (len(fake) or ctx.test is not None):
            classifier, hit = domain_classifier(
                ctx.source.train, device=ctx.device, cache_dir=ctx.cache_dir, epochs=epochs, seed=0,
                fingerprint=str(ctx.source.info.get("fingerprint")) + json.dumps(ctx.source.info.get("split"),
                                                                               sort_keys=True))
            ctx.note("feature_extractor_cache", "hit" if hit else ("miss" if ctx.cache_dir else "off"))
            if len(fake):
                ctx.metrics.update(sample_quality(ctx.source.train, fake, classifier, device=ctx.device))
        if ctx.source is not None and ctx.artifacts_dir is not None and len(fake):
            path = save_grid(train, fake, Path(ctx.artifacts_dir) / f"{ctx.artifact_stem}.png", seed=ctx.seed)
            ctx.note("samples_png", str(path))
        self._assess_cas(generator, train, ctx, epochs, classifier)

    def _assess_cas(self, generator: torch.nn.Module, train: ImageSet, ctx: Context, epochs: int,
                    reference: torch.nn.Module | None) -> None:
        """CAS (``cas.py``) of ``generator`` on ``ctx.test`` into ``ctx.metrics``; None values
        without a test split. ``reference``: the domain classifier (None: no reference)."""
        from .cas import classification_accuracy_score, empty_cas

        ctx.metrics.update(empty_cas(train.num_classes))
        if ctx.test is None:
            return
        classes = self.generatable_classes(train)
        if len(classes) < 2:
            ctx.note("cas_skipped", f"CAS needs two or more generatable classes, {self.name} has {classes}")
            return
        start = time.perf_counter()
        n = max(train.counts())
        labels = torch.tensor(classes, dtype=torch.int64).repeat_interleave(n)
        # a copy of the context: notes a sample() makes about this draw stay out of the record
        shadow = dataclasses.replace(ctx, record={}, metrics={})
        generated = self._draw(generator, labels, train, shadow, ctx.generator(f"{self.name}-cas"))
        ctx.metrics.update(classification_accuracy_score(
            generated, ctx.test, classes, device=ctx.device, epochs=epochs,
            init_seed=ctx._seed_for(f"{self.name}-cas-init"), seed=ctx._seed_for(f"{self.name}-cas-train"),
            reference=reference))
        ctx.note("cas_train_s", time.perf_counter() - start)


def check_collapse(name: str, real: ImageSet, fake: ImageSet, n: int = 64) -> None:
    """Raise CollapseError if a class's samples are far less diverse than its real images."""
    for c in fake.labels.unique().tolist():
        f = fake.images[fake.labels == c][:n].reshape(-1, fake.images[0].numel()).float()
        r = real.images[real.labels == c][:n].reshape(-1, real.images[0].numel()).float()
        if len(f) < 2 or len(r) < 2:
            continue
        spread_f = torch.pdist(f).mean()
        spread_r = torch.pdist(r).mean()
        if spread_r > 0 and spread_f < COLLAPSE_RATIO * spread_r:
            raise CollapseError(f"{name}: generator collapsed for class {c} (sample spread "
                                f"{float(spread_f):.2f} vs real {float(spread_r):.2f})")
