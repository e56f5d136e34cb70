"""DeepSMOTE: an encoder/decoder with a permutation penalty, then SMOTE in its latent space.

Dablain, Krawczyk & Chawla, "DeepSMOTE: Fusing Deep Learning and SMOTE for Imbalanced Data",
IEEE TNNLS 2022; official code dd1github/DeepSMOTE (``DeepSMOTE_MNIST.py``, ``GenerateSamples.py``).

Training (``fit``), one step per mini-batch, Adam (the official code's default betas, the
profile's lr, 2e-4 as in the paper):

* reconstruction: ``MSE(decode(encode(x)), x)`` on a random mini-batch;
* the permutation penalty, as the official code does it: one class ``c`` is drawn uniformly
  (among the classes with images), ``m = min(n_c, batch_size)`` of its images are drawn
  without replacement (the official code: ``min(n_c, 100)`` with batch size 100), they are
  encoded, the embeddings are **detached** (the official code goes through NumPy) and put in
  the order ``perm = [1, 2, ..., m-1, 0]`` (the official cyclic shift), decoded, and compared
  by MSE with the images in that same order: ``MSE(decode(enc(x)[perm]), x[perm])``
  (:func:`permutation_loss`). Because the same permutation is applied to both sides, the term
  is a class-batch reconstruction that trains only the decoder — that is what the official code
  computes; we reproduce it rather than the paper's prose.
* loss = reconstruction + penalty; the decoder ends in a sigmoid (images in [0, 1]) where the
  official code uses tanh.

Sampling (``sample``): the class's real training images (from ``train``) are encoded (eval
mode) and SMOTE runs on the codes (:func:`latent_smote`, a direct seeded implementation of the
official ``G_SM``: a random base code, one of its ``k`` nearest same-class neighbours, a
uniform gap), then the codes are decoded. ``k = k_neighbors`` (default 5), reduced to
``n_c - 1`` for a class with ``n_c <= k`` images. A class with a **single** image cannot be
interpolated: its one code is copied with Gaussian jitter of standard deviation
``jitter`` x (per-dimension std of all training codes) and decoded (default jitter 0.1), so its
samples are small variations of the reconstruction of its only image.

Scaled-down defaults for CPU (see :mod:`.autoencoders`): ``width`` 32 (official 64), ``latent``
64 (official 300 for 28 px MNIST, an over-complete code for 8 px digits).
"""
from __future__ import annotations

import torch
from torch import nn

from ..benchmarks.contract.context import Context
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from .autoencoders import Decoder, Encoder, adam, batch_indices, decode, encode, postfix_every, to_unit
from .base import GenerativeOversampler, optimise


class DeepSmoteNet(nn.Module):
    def __init__(self, image_shape, latent: int, width: int):
        super().__init__()
        self.encoder = Encoder(image_shape, latent, width)
        self.decoder = Decoder(image_shape, latent, width)


def cyclic_shift(m: int) -> torch.Tensor:
    """The official code's permutation of a class subset of size m: [1, 2, ..., m-1, 0]."""
    return torch.roll(torch.arange(m), -1)


def permutation_loss(encoder: nn.Module, decoder: nn.Module, x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``MSE(decode(encode(x).detach()[perm]), x[perm])`` — DeepSMOTE's penalty term."""
    with torch.no_grad():
        codes = encoder(x)
    return nn.functional.mse_loss(decoder(codes[perm]), x[perm])


def latent_smote(codes: torch.Tensor, n: int, k: int, gen: torch.Generator,
                 jitter: float | torch.Tensor = 0.0) -> torch.Tensor:
    """``n`` SMOTE codes from the same-class ``codes`` (n_c, L): base + u * (neighbour - base).

    The neighbour is one of the base's ``min(k, n_c - 1)`` nearest codes (Euclidean, itself
    excluded, ties broken by index), u ~ U(0, 1); all randomness from ``gen`` (a CPU generator).
    With a single code (n_c == 1) the result is copies of it plus N(0, jitter^2) noise
    (``jitter`` a float or a per-dimension tensor (L,)).
    """
    n_c, dim = codes.shape
    if n_c == 0:
        raise ValueError("latent_smote: no codes to interpolate")
    if n <= 0:
        return codes.new_zeros((0, dim))
    src = codes.detach().cpu().double()
    if n_c == 1:
        noise = torch.randn((n, dim), generator=gen, dtype=torch.float64)
        if isinstance(jitter, torch.Tensor):
            jitter = jitter.detach().cpu().double()
        return (src.expand(n, dim) + jitter * noise).to(codes.dtype).to(codes.device)
    k = max(1, min(int(k), n_c - 1))
    dist = torch.cdist(src, src)
    dist.fill_diagonal_(float("inf"))
    neighbours = torch.argsort(dist, dim=1, stable=True)[:, :k]
    base = torch.randint(0, n_c, (n,), generator=gen)
    which = torch.randint(0, k, (n,), generator=gen)
    gap = torch.rand((n, 1), generator=gen, dtype=torch.float64)
    x_base = src[base]
    x_nb = src[neighbours[base, which]]
    return (x_base + gap * (x_nb - x_base)).to(codes.dtype).to(codes.device)


@register_method
class DeepSMOTE(GenerativeOversampler):
    """DeepSMOTE (see the module docstring for the training and sampling rules)."""

    name = "deepsmote"
    summary = "DeepSMOTE: encoder/decoder with a permutation penalty, SMOTE in latent space, decoded"
    reference = ("Dablain, Krawczyk & Chawla, DeepSMOTE: Fusing Deep Learning and SMOTE for Imbalanced "
                 "Data, IEEE TNNLS 2022 (dd1github/DeepSMOTE)")
    defaults = {**GenerativeOversampler.defaults, "latent": 64, "width": 32, "k_neighbors": 5, "jitter": 0.1}

    def check(self) -> None:
        super().check()
        self.require(1, "latent", "width", "k_neighbors")
        self.require(0, "jitter")

    def build(self, image_shape, num_classes):
        return DeepSmoteNet(image_shape, int(self.params["latent"]), int(self.params["width"]))

    def fit(self, generator: DeepSmoteNet, train: ImageSet, ctx: Context, budget: dict) -> None:
        device = ctx.device
        steps, bs = int(budget["steps"]), int(budget["batch_size"])
        enc, dec = generator.encoder, generator.decoder
        opt = adam(generator.parameters(), budget["lr"], betas=(0.9, 0.999))
        x_all = to_unit(train.images, device)
        labels = train.labels
        members = [torch.nonzero(labels == c).flatten() for c in range(train.num_classes)]
        present = [c for c, m in enumerate(members) if len(m)]
        gen = ctx.generator(f"{self.name}-fit")
        batches = batch_indices(len(train), bs, gen)
        mse = nn.functional.mse_loss
        with self.progress(ctx, steps, self.name) as bar:
            for step in range(steps):
                x = x_all[next(batches).to(device)]
                rec = mse(dec(enc(x)), x)
                c = present[int(torch.randint(0, len(present), (1,), generator=gen))]
                pick = members[c][torch.randperm(len(members[c]), generator=gen)[:min(len(members[c]), bs)]]
                perm_loss = permutation_loss(enc, dec, x_all[pick.to(device)], cyclic_shift(len(pick)).to(device))
                loss = rec + perm_loss
                self.check_finite(self.name, step, rec=rec, perm=perm_loss)
                optimise(opt, loss)
                bar.update(1)
                if postfix_every(step, steps):
                    bar.set_postfix(rec=f"{rec.item():.4f}", perm=f"{perm_loss.item():.4f}")

    def sample_codes(self, generator: DeepSmoteNet, labels: torch.Tensor, train: ImageSet, ctx: Context,
                     gen: torch.Generator) -> torch.Tensor:
        """The latent SMOTE codes (len(labels), latent), in the order of ``labels``."""
        labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
        codes = encode(generator.encoder, train.images, ctx.device).cpu()
        out = torch.zeros((len(labels), codes.shape[1]), dtype=codes.dtype)
        scale = codes.std(dim=0) if len(codes) > 1 else torch.ones(codes.shape[1])
        k = int(self.params["k_neighbors"])
        k_used, jittered = {}, []
        for c in sorted(labels.unique().tolist()):
            where = torch.nonzero(labels == c).flatten()
            own = codes[train.labels == c]
            if len(own) == 0:
                raise ValueError(f"{self.name}: class {c} has no training images to interpolate")
            if len(own) == 1:
                jittered.append(c)
            elif len(own) <= k:
                k_used[str(c)] = len(own) - 1
            out[where] = latent_smote(own, len(where), k, gen, jitter=float(self.params["jitter"]) * scale)
        if k_used:
            ctx.note("latent_k_reduced", k_used)
        if jittered:
            ctx.note("latent_jittered_classes", jittered)
        return out

    def sample(self, generator: DeepSmoteNet, labels, train: ImageSet, ctx: Context, gen: torch.Generator):
        z = self.sample_codes(generator, labels, train, ctx, gen)
        generator.decoder.eval()
        return decode(generator.decoder, z.to(ctx.device))
