"""ACGAN: conditional generator, discriminator with an auxiliary classifier (Odena et al. 2017)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..benchmarks.contract.method import register_method
from .cgan import CGAN
from .nets import Discriminator


@register_method
class ACGAN(CGAN):
    """Auxiliary-classifier GAN, sampled for each minority class up to the largest count.

    Generator as in cGAN (``z ⊕ embed(y)``). The discriminator does not see the label; it has
    two heads on shared DCGAN features: the source logit (real/fake) and ``num_classes`` class
    logits. Losses (the paper's L_S and L_C, both as negative log-likelihoods): D minimises
    ``L_S + L_C`` = BCE(real→1) + BCE(fake→0) + CE(class|real) + CE(class|fake); G minimises
    ``L_C − L_S`` in its non-saturating form, BCE(fake→1) + CE(class|fake).

    Training loop, budget, optimiser (Adam, budget ``lr``, betas (0.5, 0.999)), batch sampling
    (``sampling=data``: uniform over the imbalanced items; ``balanced``) and parameters
    (``z_dim`` 64, ``width`` 64, ``sampling``) as :class:`~imbench.gans.cgan.CGAN`.
    """

    name = "acgan"
    summary = "auxiliary-classifier GAN (real/fake + class heads on D) sampled for each minority class"
    reference = "Odena, Olah & Shlens, Conditional Image Synthesis with Auxiliary Classifier GANs, ICML 2017"
    defaults = {k: v for k, v in CGAN.defaults.items() if k != "conditioning"}  # D does not see y

    def discriminator(self, image_shape, num_classes: int) -> Discriminator:
        return Discriminator(image_shape, num_classes, width=int(self.params["width"]), norm="batch",
                             conditioning=None, aux=True)

    def d_loss(self, D, real, fake, labels, gen: torch.Generator) -> torch.Tensor:
        src_real, cls_real = D(real)
        src_fake, cls_fake = D(fake)
        source = (F.binary_cross_entropy_with_logits(src_real, torch.ones_like(src_real))
                  + F.binary_cross_entropy_with_logits(src_fake, torch.zeros_like(src_fake)))
        return source + F.cross_entropy(cls_real, labels) + F.cross_entropy(cls_fake, labels)

    def g_loss(self, D, fake, labels) -> torch.Tensor:
        src, cls = D(fake)
        return F.binary_cross_entropy_with_logits(src, torch.ones_like(src)) + F.cross_entropy(cls, labels)
