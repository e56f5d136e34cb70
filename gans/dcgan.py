"""Per-class DCGAN oversampling: one unconditional DCGAN per minority class (Radford et al. 2016)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.context import Context
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from .base import GenerativeOversampler, frozen, optimise
from .nets import Discriminator, Generator, noise, to_signed, to_uint8


class ClassGenerators(nn.Module):
    """One unconditional DCGAN generator per class (all classes, so the state dict does not
    depend on the data) and a ``trained`` flag per class."""

    def __init__(self, image_shape, num_classes: int, z_dim: int, width: int):
        super().__init__()
        self.image_shape = tuple(int(v) for v in image_shape)
        self.z_dim = int(z_dim)
        self.nets = nn.ModuleList(Generator(image_shape, 0, z_dim=z_dim, width=width) for _ in range(num_classes))
        self.register_buffer("trained", torch.zeros(num_classes, dtype=torch.bool))


@register_method
class DCGAN(GenerativeOversampler):
    """Per-class DCGAN oversampling (the survey's malaria / chest X-ray / liver lesion recipe).

    Every class whose count is below the largest gets its own unconditional DCGAN (generator and
    discriminator of ``gans/nets.py``: BatchNorm, LeakyReLU 0.2 in D, non-saturating BCE,
    Adam(budget ``lr``, betas (0.5, 0.999))) trained on that class's images only; majority
    classes (deficit 0) get none and their generators stay at initialisation. The module holds a
    generator for every class so its state dict is the same for any data.

    Budget: the profile's ``steps`` are generator updates *per trained class* -- every GAN gets
    the updates a single conditional GAN gets (version 1 split ``steps`` over the classes: 45
    updates each at quick on 9 classes, an untrained generator). Each step draws ``batch_size``
    real images of the class with replacement -- a class of 2 images still trains (and overfits:
    the honest behaviour of the method). The record notes ``gan_steps_per_class`` and
    ``generator_updates`` (all classes together).

    Parameters: ``z_dim`` (64) latent size, ``width`` (64) channels of the smallest feature map
    (``gans/nets.py``).
    """

    name = "dcgan"
    summary = "one unconditional DCGAN per minority class, sampled up to the largest count"
    reference = ("Radford, Metz & Chintala, Unsupervised Representation Learning with Deep Convolutional GANs, "
                 "ICLR 2016 (per-class oversampling as surveyed by Sampath et al. 2021)")
    defaults = {**GenerativeOversampler.defaults, "z_dim": 64, "width": 64}
    version = 2  # steps per class (was: split over the classes)

    def check(self) -> None:
        super().check()
        self.require(1, "z_dim", "width")

    def generator_updates(self, budget: dict, train: ImageSet) -> int:
        return int(budget["steps"]) * len(self.trained_classes(train.counts()))

    def build(self, image_shape, num_classes: int) -> ClassGenerators:
        return ClassGenerators(image_shape, num_classes, int(self.params["z_dim"]), int(self.params["width"]))

    @staticmethod
    def trained_classes(counts: list[int]) -> list[int]:
        """The classes that get a GAN: every class below the largest count."""
        top = max(counts)
        return [c for c, n in enumerate(counts) if n < top]

    def generatable_classes(self, train: ImageSet) -> list[int]:
        """The classes that get a GAN (``trained_classes``); the others cannot be sampled."""
        return self.trained_classes(train.counts())

    def fit(self, generator: ClassGenerators, train: ImageSet, ctx: Context, budget: dict) -> None:
        device = ctx.device
        counts = train.counts()
        classes = self.trained_classes(counts)
        empty = [train.class_names[c] for c in classes if counts[c] == 0]
        if empty:
            raise UsageError(f"method 'dcgan': class {empty[0]!r} has no training images to fit a GAN on")
        if not classes:
            return
        per_class = int(budget["steps"])
        batch_size, lr = int(budget["batch_size"]), float(budget["lr"])
        ctx.note("gan_steps_per_class", per_class)
        gen = ctx.generator(f"{self.name}-fit")
        z_dim = generator.z_dim
        with self.progress(ctx, per_class * len(classes), self.name) as bar:
            for c in classes:
                G = generator.nets[c]
                D = Discriminator(train.image_shape, 0, width=int(self.params["width"]), norm="batch").to(device)
                opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
                opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
                images = train.images[train.labels == c].to(device)
                G.train()
                D.train()
                for step in range(per_class):
                    idx = torch.randint(len(images), (batch_size,), generator=gen).to(device)
                    real = to_signed(images[idx])
                    fake = G(noise(batch_size, z_dim, gen, device))
                    out_real, _ = D(real)
                    out_fake, _ = D(fake.detach())
                    loss_d = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                              + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
                    optimise(opt_d, loss_d)
                    with frozen(D):
                        out, _ = D(fake)  # the generator update reuses the fake batch
                        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
                        optimise(opt_g, loss_g)
                    self.check_finite(self.name, step, d=loss_d.detach(), g=loss_g.detach())
                    bar.update(1)
                    if step % 20 == 0 or step == per_class - 1:
                        bar.set_postfix(cls=c, d=f"{float(loss_d.detach()):.3f}", g=f"{float(loss_g.detach()):.3f}")
                generator.trained[c] = True

    @torch.no_grad()
    def sample(self, generator: ClassGenerators, labels: torch.Tensor, train: ImageSet, ctx: Context,
               gen: torch.Generator) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
        z = torch.randn(len(labels), generator.z_dim, generator=gen)
        out = torch.zeros((len(labels), *generator.image_shape), dtype=torch.uint8)
        for c in labels.unique().tolist():
            if not bool(generator.trained[c]):
                raise ValueError(f"dcgan: class {c} has no trained generator (it is not a minority class)")
            idx = (labels == c).nonzero().squeeze(1)
            for i in range(0, len(idx), 1024):
                part = idx[i:i + 1024]
                out[part] = to_uint8(generator.nets[c](z[part].to(ctx.device))).cpu()
        return out
