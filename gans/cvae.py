"""Conditional VAE oversampling (the survey's "VAE oversampling" peer).

Sohn, Lee & Yan, "Learning Structured Output Representation using Deep Conditional Generative
Models", NeurIPS 2015 (CVAE); Kingma & Welling 2014 (VAE).

The label's one-hot vector is concatenated to the encoder's input channels (broadcast over the
image) and to the decoder's latent input (:mod:`.autoencoders`, ``cond = C``). The encoder
outputs the mean and log-variance of q(z | x, y) = N(mu, diag(exp(logvar))); the prior is
p(z | y) = N(0, I) (Sohn et al.'s simplest variant, the one used for oversampling). Training
minimises the negative ELBO per image, averaged over the mini-batch::

    loss = BCE(decode(z, y), x) summed over pixels + beta_kl * KL(q(z | x, y) || N(0, I))
    KL   = -1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))        (closed form)

with z = mu + exp(logvar / 2) * eps (reparameterisation, eps from a seeded generator), Adam with
its standard betas (0.9, 0.999) at ``lr_mult`` x the profile's GAN lr: the profiles' lr (2e-4) is
DCGAN's, a VAE is conventionally trained at 1e-3 (the default ``lr_mult`` 5 gives that); at 2e-4
the ``quick`` budget (400 steps) leaves the CVAE under-trained (digits, long-tail IR 10: CAS 0.35
vs 0.99 at 1e-3; that was CAS on the test split -- on a validation split, ``imbench run select``:
balanced accuracy 0.906 at ``lr_mult`` 5 vs 0.894 at 1, std 0.019, so 5 stays). Sampling: z ~ N(0, I) from the sampling generator, decoded with the requested
label. Parameters: ``latent`` (16), ``beta_kl`` (1.0), ``lr_mult`` (5.0), ``width`` (32).
"""
from __future__ import annotations

import torch
from torch import nn

from ..benchmarks.contract.context import Context
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from .autoencoders import Decoder, Encoder, adam, batch_indices, decode, one_hot, postfix_every, to_unit
from .base import GenerativeOversampler, optimise


class CVAENet(nn.Module):
    def __init__(self, image_shape, num_classes: int, latent: int, width: int):
        super().__init__()
        self.num_classes = int(num_classes)
        self.latent = int(latent)
        self.encoder = Encoder(image_shape, latent, width, cond=num_classes, out_features=2 * latent)
        self.decoder = Decoder(image_shape, latent, width, cond=num_classes)

    def posterior(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x, y)."""
        mu, logvar = self.encoder(x, one_hot(labels, self.num_classes)).chunk(2, dim=1)
        return mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-item KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form, shape (B,)."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def elbo_terms(net: CVAENet, x: torch.Tensor, labels: torch.Tensor, eps: torch.Tensor):
    """(reconstruction BCE, KL, mu, logvar): the two ELBO terms averaged over the batch."""
    mu, logvar = net.posterior(x, labels)
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = net.decoder(z, one_hot(labels, net.num_classes))
    bce = nn.functional.binary_cross_entropy(recon, x, reduction="none").flatten(1).sum(dim=1).mean()
    kl = kl_divergence(mu, logvar).mean()
    return bce, kl, mu, logvar


@register_method
class CVAE(GenerativeOversampler):
    """Conditional VAE (see the module docstring)."""

    name = "cvae"
    summary = "Conditional VAE: label-conditioned encoder/decoder trained on the ELBO, z ~ N(0, I) per class"
    reference = ("Sohn, Lee & Yan, Learning Structured Output Representation using Deep Conditional "
                 "Generative Models, NeurIPS 2015")
    defaults = {**GenerativeOversampler.defaults, "latent": 16, "beta_kl": 1.0, "lr_mult": 5.0, "width": 32}

    def check(self) -> None:
        super().check()
        self.require(1, "latent", "width")
        self.require(0, "beta_kl")
        self.require(0, "lr_mult", strict=True)

    def build(self, image_shape, num_classes):
        return CVAENet(image_shape, num_classes, int(self.params["latent"]), int(self.params["width"]))

    def fit(self, generator: CVAENet, train: ImageSet, ctx: Context, budget: dict) -> None:
        steps = int(budget["steps"])
        beta = float(self.params["beta_kl"])
        x_all = to_unit(train.images, ctx.device)
        y_all = train.labels.to(ctx.device)
        opt = adam(generator.parameters(), float(budget["lr"]) * float(self.params["lr_mult"]), betas=(0.9, 0.999))
        gen = ctx.generator(f"{self.name}-fit")
        batches = batch_indices(len(train), int(budget["batch_size"]), gen)
        with self.progress(ctx, steps, self.name) as bar:
            for step in range(steps):
                idx = next(batches).to(ctx.device)
                eps = torch.randn((len(idx), generator.latent), generator=gen).to(ctx.device)
                bce, kl, _, _ = elbo_terms(generator, x_all[idx], y_all[idx], eps)
                loss = bce + beta * kl
                self.check_finite(self.name, step, rec=bce, kl=kl)
                optimise(opt, loss)
                bar.update(1)
                if postfix_every(step, steps):
                    bar.set_postfix(rec=f"{bce.item():.2f}", kl=f"{kl.item():.2f}")

    def sample(self, generator: CVAENet, labels, train: ImageSet, ctx: Context, gen: torch.Generator):
        labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
        z = torch.randn((len(labels), generator.latent), generator=gen).to(ctx.device)
        generator.eval()
        return decode(generator.decoder, z, cond=one_hot(labels, generator.num_classes).to(ctx.device))
