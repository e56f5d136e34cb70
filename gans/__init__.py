"""GAN-based (and generative) oversampling methods of the image-level track.

Importing this package registers: ``dcgan`` (one DCGAN per minority class), ``cgan``
(conditional DCGAN), ``acgan`` (auxiliary-classifier GAN), ``wgan-gp`` (conditional WGAN with
gradient penalty), ``bagan`` (balancing GAN), ``cyclegan`` (majority→minority translation),
``deepsmote`` (encoder/decoder + latent SMOTE) and ``cvae`` (conditional VAE). The shared
machinery (blend, generator cache, failure checks, sample quality, grids) is in ``base.py``.
"""
from . import acgan, bagan, cgan, cvae, cyclegan, dcgan, deepsmote, wgan_gp  # noqa: F401
