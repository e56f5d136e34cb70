"""GAN-based (and generative) oversampling methods of the image-level track."""
