"""GAN-based (and generative) methods.

Image level (classification): ``dcgan`` (one DCGAN per minority class), ``cgan`` (conditional
DCGAN), ``acgan`` (auxiliary-classifier GAN), ``wgan-gp`` (conditional WGAN with gradient
penalty), ``bagan`` (balancing GAN), ``cyclegan`` (majority→minority translation), ``deepsmote``
(encoder/decoder + latent SMOTE) and ``cvae`` (conditional VAE); the shared machinery (blend,
generator cache, failure checks, sample quality, grids) is in ``base.py``.

Object level (detection): ``sr-gan`` (Perceptual GAN: small-object ROI features super-resolved
by a generator trained against a discriminator and the detection loss; Faster R-CNN),
``asdn`` (A-Fast-RCNN's adversarial spatial dropout on ROI features; Faster R-CNN) and
``gan-paste`` (a conditional GAN's rare-class objects pasted into scenes).
"""
from . import acgan, asdn, bagan, cgan, cvae, cyclegan, dcgan, deepsmote, gan_paste, sr_gan, wgan_gp  # noqa: F401
