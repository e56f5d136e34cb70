"""BAGAN: an autoencoder-initialised GAN with class-conditional latent Gaussians.

Mariani, Scheidegger, Istrate, Bekas & Malossi, "BAGAN: Data Augmentation with Balancing GAN",
arXiv:1803.09655, 2018; official code IBM/BAGAN (``balancing_gan.py``).

``fit`` runs the paper's three stages within the profile's ``steps``:

1. **autoencoder** (``round(ae_fraction * steps)`` steps, default half — the official code
   trains the autoencoder for as many epochs as the GAN): encoder -> decoder, MSE
   reconstruction of random mini-batches, Adam (beta1 0.5 as the official code, the profile's lr);
2. **class-conditional latents**: the encoder's codes (eval mode) of each class's training
   images give a Gaussian N(mu_c, Sigma_c) (``np.cov``'s unbiased covariance); the buffers hold
   ``mu_c`` and the Cholesky factor of ``Sigma_c + ridge * I`` (default ridge 1e-3, so a
   rank-deficient covariance of a small class is still a valid Gaussian); a class with one
   image gets ``Sigma_c = 0`` (so ``ridge * I``); a class with none cannot be sampled;
3. **adversarial training** (the remaining steps): the generator *is* the trained decoder
   (its weights are the decoder's at the start of the stage); the discriminator is a copy of
   the trained encoder's conv trunk plus a new linear head with C + 1 outputs (C classes and
   "fake"). Per step, as ``_train_one_epoch`` of the official code (uniform class ratios):
   D gets a real mini-batch (labels = their classes) and ``ceil(B / C)`` generated images
   (label = fake), softmax cross-entropy; G generates ``ceil(B / C) + B`` images from latents of
   uniformly drawn classes ``c`` (z ~ N(mu_c, Sigma_c)) and is trained so that D classifies them
   as ``c``. The encoder itself is not changed by this stage.

Sampling: z ~ N(mu_c, Sigma_c) for every requested label, decoded by the generator.

Departures, for CPU budgets: the DCGAN-style encoder/decoder of :mod:`.autoencoders` (BatchNorm,
``width`` 32) instead of the official Keras nets (dropout 0.3, 5x5 upsampling convs), sigmoid
output in [0, 1] instead of tanh, ``latent`` 64 (official 100).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.context import Context
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from .autoencoders import Decoder, Encoder, adam, batch_indices, decode, encode, postfix_every, to_unit
from .base import GenerativeOversampler, frozen, optimise


class BaganNet(nn.Module):
    """Encoder, generator (= decoder) and the class-conditional latent Gaussians as buffers."""

    def __init__(self, image_shape, num_classes: int, latent: int, width: int):
        super().__init__()
        self.encoder = Encoder(image_shape, latent, width)
        self.generator = Decoder(image_shape, latent, width)
        self.register_buffer("means", torch.zeros(num_classes, latent))
        self.register_buffer("chol", torch.eye(latent).repeat(num_classes, 1, 1))
        self.register_buffer("class_counts", torch.zeros(num_classes, dtype=torch.int64))

    def latents(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """z ~ N(mu_c, L_c L_c^T) per label; noise drawn on the CPU from ``gen``."""
        labels = torch.as_tensor(labels, dtype=torch.int64).to(self.means.device)
        eps = torch.randn((len(labels), self.means.shape[1]), generator=gen).to(self.means.device)
        return self.means[labels] + torch.einsum("bij,bj->bi", self.chol[labels], eps)


class Discriminator(nn.Module):
    """The encoder's conv trunk (a copy) + a linear head with C + 1 outputs (last = fake)."""

    def __init__(self, encoder: Encoder, num_classes: int):
        super().__init__()
        self.body = copy.deepcopy(encoder)
        del self.body.fc
        self.head = nn.Linear(encoder.features_dim, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body.features(x))


@register_method
class BAGAN(GenerativeOversampler):
    """BAGAN (see the module docstring for the stages and the step split)."""

    name = "bagan"
    summary = "BAGAN: autoencoder-initialised GAN, class-conditional latent Gaussians, C+1-way discriminator"
    reference = ("Mariani, Scheidegger, Istrate, Bekas & Malossi, BAGAN: Data Augmentation with Balancing "
                 "GAN, arXiv:1803.09655, 2018 (IBM/BAGAN)")
    defaults = {**GenerativeOversampler.defaults, "latent": 64, "width": 32, "ae_fraction": 0.5, "ridge": 1e-3}

    def check(self) -> None:
        super().check()
        self.require(1, "latent", "width")
        if not 0.0 <= float(self.params["ae_fraction"]) <= 1.0:
            raise UsageError(f"method {self.name!r}: ae_fraction must be in [0, 1], got {self.params['ae_fraction']}")
        self.require(0, "ridge", strict=True)

    def build(self, image_shape, num_classes):
        return BaganNet(image_shape, num_classes, int(self.params["latent"]), int(self.params["width"]))

    def split(self, steps: int) -> tuple[int, int]:
        """(autoencoder steps, adversarial steps)."""
        ae = int(round(float(self.params["ae_fraction"]) * steps))
        return ae, steps - ae

    # ------------------------------------------------------------------ stages
    def fit(self, generator: BaganNet, train: ImageSet, ctx: Context, budget: dict) -> None:
        ae_steps, gan_steps = self.split(int(budget["steps"]))
        self.train_autoencoder(generator, train, ctx, budget, ae_steps)
        self.fit_latents(generator, train, ctx)
        self.train_adversarial(generator, train, ctx, budget, gan_steps)

    def train_autoencoder(self, net: BaganNet, train: ImageSet, ctx: Context, budget: dict, steps: int) -> None:
        net.encoder.train()
        net.generator.train()
        x_all = to_unit(train.images, ctx.device)
        opt = adam(list(net.encoder.parameters()) + list(net.generator.parameters()), budget["lr"])
        batches = batch_indices(len(train), int(budget["batch_size"]), ctx.generator(f"{self.name}-ae"))
        with self.progress(ctx, steps, f"{self.name} autoencoder") as bar:
            for step in range(steps):
                x = x_all[next(batches).to(ctx.device)]
                rec = nn.functional.mse_loss(net.generator(net.encoder(x)), x)
                self.check_finite(self.name, step, rec=rec)
                optimise(opt, rec)
                bar.update(1)
                if postfix_every(step, steps):
                    bar.set_postfix(rec=f"{rec.item():.4f}")

    @torch.no_grad()
    def fit_latents(self, net: BaganNet, train: ImageSet, ctx: Context) -> None:
        codes = encode(net.encoder, train.images, ctx.device).double()
        dim = codes.shape[1]
        ridge = float(self.params["ridge"]) * torch.eye(dim, dtype=torch.float64, device=codes.device)
        for c in range(train.num_classes):
            own = codes[(train.labels == c).to(codes.device)]
            net.class_counts[c] = len(own)
            if len(own) == 0:
                net.means[c] = 0.0
                net.chol[c] = torch.linalg.cholesky(ridge).float()
                continue
            mean = own.mean(dim=0)
            cov = torch.cov(own.T) if len(own) > 1 else torch.zeros_like(ridge)
            net.means[c] = mean.float()
            net.chol[c] = torch.linalg.cholesky(cov + ridge).float()

    def make_discriminator(self, net: BaganNet, num_classes: int) -> Discriminator:
        return Discriminator(net.encoder, num_classes).to(net.means.device)

    def train_adversarial(self, net: BaganNet, train: ImageSet, ctx: Context, budget: dict, steps: int) -> None:
        if steps <= 0:
            return
        C = train.num_classes
        disc = self.make_discriminator(net, C)
        gen_net = net.generator
        disc.train()
        gen_net.train()
        opt_d = adam(disc.parameters(), budget["lr"])
        opt_g = adam(gen_net.parameters(), budget["lr"])
        present = torch.nonzero(net.class_counts > 0).flatten().cpu()
        x_all = to_unit(train.images, ctx.device)
        y_all = train.labels.to(ctx.device)
        gen = ctx.generator(f"{self.name}-gan")
        batches = batch_indices(len(train), int(budget["batch_size"]), gen)
        ce = nn.functional.cross_entropy
        with self.progress(ctx, steps, f"{self.name} gan") as bar:
            for step in range(steps):
                idx = next(batches).to(ctx.device)
                real, real_y = x_all[idx], y_all[idx]
                n_fake = int(math.ceil(len(idx) / C))
                # discriminator: real -> its class, generated -> fake (index C)
                fake_y = present[torch.randint(0, len(present), (n_fake,), generator=gen)]
                with torch.no_grad():
                    fake = gen_net(net.latents(fake_y, gen))
                logits = disc(torch.cat([real, fake]))
                target = torch.cat([real_y, torch.full((n_fake,), C, dtype=torch.int64, device=ctx.device)])
                loss_d = ce(logits, target)
                self.check_finite(self.name, step, d=loss_d)
                optimise(opt_d, loss_d)
                # generator: generated images of class c -> c
                g_y = present[torch.randint(0, len(present), (n_fake + len(idx),), generator=gen)]
                with frozen(disc):
                    loss_g = ce(disc(gen_net(net.latents(g_y, gen))), g_y.to(ctx.device))
                    self.check_finite(self.name, step, g=loss_g)
                    optimise(opt_g, loss_g)
                bar.update(1)
                if postfix_every(step, steps):
                    bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}")

    def sample(self, generator: BaganNet, labels, train: ImageSet, ctx: Context, gen: torch.Generator):
        labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
        empty = [c for c in labels.unique().tolist() if int(generator.class_counts[c]) == 0]
        if empty:
            raise ValueError(f"{self.name}: class {empty[0]} had no training images; its latent Gaussian is undefined")
        generator.eval()
        return decode(generator.generator, generator.latents(labels, gen))
