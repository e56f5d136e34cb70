"""GAN-based (and generative) methods.

Image level (classification): ``dcgan`` (one DCGAN per minority class), ``cgan`` (conditional
DCGAN), ``acgan`` (auxiliary-classifier GAN), ``wgan-gp`` (conditional WGAN with gradient
penalty), ``bagan`` (balancing GAN), ``cyclegan`` (majority→minority translation), ``deepsmote``
(encoder/decoder + latent SMOTE) and ``cvae`` (conditional VAE); the shared machinery (blend,
generator cache, failure checks, sample quality, grids) is in ``base.py``.

Object level (detection): ``sr-gan`` (Perceptual GAN: small-object ROI features super-resolved
by a generator trained against a discriminator and the detection loss; Faster R-CNN),
``asdn`` (A-Fast-RCNN's adversarial spatial dropout on ROI features; Faster R-CNN) and
``cgan-paste`` (a conditional GAN's rare-class objects pasted into scenes).

Pixel level (segmentation): ``label-gan`` (label maps rebalanced with real rare-class regions,
rendered into images by a pix2pix generator, ``pix2pix.py``), ``adv-seg`` (Luc et al.'s
(image, label map) discriminator adding an adversarial term to the segmenter's loss) and ``scgan``
(the CE class weighting as an input of the segmenter, plus adv-seg's discriminator); the shared
discriminator and logit cache are in ``pair_discriminator.py``.
"""
from . import (  # noqa: F401  (importing registers the methods)
    acgan, adv_seg, asdn, bagan, cgan, cvae, cyclegan, dcgan, deepsmote, cgan_paste, label_gan, scgan, sr_gan, wgan_gp,
)
