"""WGAN-GP: a conditional Wasserstein GAN with gradient penalty (Gulrajani et al. 2017)."""
from __future__ import annotations

import torch

from ..benchmarks.contract.method import register_method
from .cgan import CGAN
from .nets import Discriminator


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                     gen: torch.Generator) -> torch.Tensor:
    """Mean over the batch of ``(||∇_x̂ D(x̂|y)||₂ − 1)²`` on random interpolates.

    ``x̂ = ε·real + (1 − ε)·fake`` with ``ε = torch.rand(len(real), 1, 1, 1, generator=gen)``
    (one ε per item, drawn on the CPU); the graph is kept (``create_graph``) so the penalty
    trains the critic.
    """
    eps = torch.rand(len(real), 1, 1, 1, generator=gen).to(real.device)
    mixed = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    out, _ = critic(mixed, labels)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


@register_method
class WGANGP(CGAN):
    """Conditional WGAN-GP, sampled for each minority class up to the largest count.

    Critic: DCGAN strided convs without BatchNorm (LayerNorm-style GroupNorm(1, ch), as the
    paper recommends, since the penalty is per item), class conditioning by projection
    (``<embed(y), h>``, Miyato & Koyama 2018); generator as in cGAN. Losses: critic
    ``D(G(z|y)|y) − D(x|y) + gp_lambda · GP`` (:func:`gradient_penalty`), generator
    ``−D(G(z|y)|y)``. Adam(``lr``, betas (0.0, 0.9)) — the paper's Algorithm 1 (α = 1e-4,
    β₁ = 0, β₂ = 0.9), so the method's own ``lr`` parameter (default 1e-4) replaces the
    profile's ``gan.lr``, which is tuned for the BCE GANs.

    Budget: ``steps`` **generator** updates, each after ``n_critic`` critic updates, as every
    family counts its budget in generator updates (version 1 counted critic updates: 80 generator
    updates at quick, an untrained generator); it costs about ``n_critic`` times a BCE GAN's
    critic work. Real batches as in :class:`~imbench.gans.cgan.CGAN` (``sampling``).

    Parameters: ``n_critic`` (5), ``gp_lambda`` (10.0), ``lr`` (1e-4), ``z_dim`` (64),
    ``width`` (64), ``sampling`` (data | balanced).
    """

    name = "wgan-gp"
    summary = "conditional WGAN with gradient penalty (projection critic, no BatchNorm) per minority class"
    reference = "Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, Improved Training of Wasserstein GANs, NeurIPS 2017"
    defaults = {**{k: v for k, v in CGAN.defaults.items() if k != "conditioning"},
                "n_critic": 5, "gp_lambda": 10.0, "lr": 1e-4}

    betas = (0.0, 0.9)

    def check(self) -> None:
        super().check()
        self.require(1, "n_critic")
        self.require(0, "gp_lambda")
        self.require(0, "lr", strict=True)

    @property
    def critic_steps(self) -> int:  # type: ignore[override]
        return int(self.params["n_critic"])

    version = 2  # steps are generator updates (was: critic updates, steps / n_critic generator updates)

    def discriminator(self, image_shape, num_classes: int) -> Discriminator:
        return Discriminator(image_shape, num_classes, width=int(self.params["width"]), norm="layer",
                             conditioning="projection")

    def learning_rate(self, budget: dict) -> float:
        return float(self.params["lr"])

    def d_loss(self, D, real, fake, labels, gen: torch.Generator) -> torch.Tensor:
        out_real, _ = D(real, labels)
        out_fake, _ = D(fake, labels)
        gp = gradient_penalty(D, real, fake, labels, gen)
        return out_fake.mean() - out_real.mean() + float(self.params["gp_lambda"]) * gp

    def g_loss(self, D, fake, labels) -> torch.Tensor:
        out, _ = D(fake, labels)
        return -out.mean()
