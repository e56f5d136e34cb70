"""Majority -> minority image-to-image translation with cycle consistency (CycleGAN-style).

Reproduces the survey's image-level use of CycleGAN (Zhu et al., ICCV 2017): minority images are
made by *translating* real majority images into the minority classes, as in the
facial-expression work of Zhu et al. 2018 ("Emotion classification with data augmentation using
generative adversarial networks") and the tomato-disease studies, rather than by sampling noise.

Design decisions (the suite's own, written down here):

* **One conditional pair, not one CycleGAN per class pair.** ``G(x, c)`` translates an image of
  the *source* domain into class ``c``; ``F(y, c)`` maps an image of class ``c`` back to the source
  domain. Both are conditioned through class-conditional instance norms (a per-class scale and
  shift after every norm; a one-hot input plane would be cancelled by the instance norm that
  follows it), so the module's structure depends only on ``(image_shape, num_classes)`` and the
  cost does not grow with the number of class pairs. Two discriminators, built inside ``fit``
  (sampling does not need them, so they are not cached): ``D_t(y, c)`` for the target domains, a
  projection discriminator on the class, and ``D_s(x)`` for the source domain.
* **Source domain** (parameter ``source``): ``"largest"`` (default) = the class with the largest
  count (every class tied at the largest count, if several); ``"all-majority"`` = every class whose
  count is >= the median class count (``statistics.median``; with an even number of classes, the
  mean of the two middle counts). Source images are drawn uniformly over the *images* of the source
  domain. With ``all-majority`` a source class that still has a deficit is also a target class
  (its images can then be translated into itself; the identity loss makes that near-identity).
  The source classes are stored in the module's ``source_mask`` buffer, so a cached generator
  samples from the same domain; the record gets ``source_classes``.
* **Targets**: each training item draws its target class uniformly among the classes with a
  deficit (count below the largest count) that have at least one real image, then a real image of
  that class uniformly. Uniform over classes (not over deficits) so every minority class gets the
  same share of the budget however small it is. No deficit: ``fit`` does nothing.
* **Losses** as in CycleGAN: least-squares adversarial losses (LSGAN; the discriminator loss is
  halved), cycle L1 in both directions ``|F(G(x,c),c) - x| + |G(F(y,c),c) - y|`` weighted by
  ``lambda_cycle`` (default 10), identity L1 ``|G(y,c) - y| + |F(x,s) - x|`` (``s`` = the source
  image's own class) weighted by ``lambda_id * lambda_cycle``: ``lambda_id`` is *relative*, like
  CycleGAN's ``--lambda_identity`` (default 0.5, so an absolute weight of 5; 0 turns it off). The
  identity term is computed on the first quarter of each batch (``ID_FRACTION``): the same
  expectation at a quarter of that term's cost (a sixth of the translator passes saved).
  Adam with the budget's ``lr`` and betas (0.5, 0.999); one D step per G step. CycleGAN's
  50-image history buffer of fakes and its linear lr decay are left out (budgets here are a few
  hundred steps).
* **Networks** (small, for 8-32 px, 1 or 3 channels): a ResNet-lite translator — one (H < 24) or
  two (H >= 24) stride-2 4x4 convs down to the bottleneck (``width`` channels there, ``width/2``
  one level up), ``res_blocks`` residual blocks at the bottleneck, stride-2 4x4 transposed convs
  back to the exact input size (``output_padding`` for odd sizes), sigmoid output in [0, 1]. The
  instance norms work per image, so a sample never depends on the rest of its batch. Images enter
  every network in [0, 1] and are rescaled to [-1, 1] inside. PatchGAN-lite discriminators: two
  stride-2 4x4 convs and a 3x3 head (a 2x2 patch map at 8 px, 7x7 at 28 px, 8x8 at 32 px).
* ``sample``: for each requested label ``c``, a source-domain image of ``train`` is drawn with
  ``gen`` (uniform, with replacement) and translated to ``c``.
"""
from __future__ import annotations

import statistics

import torch
from torch import nn
from torch.nn import functional as Fn

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.context import Context
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from .base import GenerativeOversampler, frozen, optimise

SOURCES = ("largest", "all-majority")
ID_FRACTION = 0.25  # share of each batch the identity term is computed on (saves a quarter of the passes)


# ---------------------------------------------------------------------------------------- networks
class CondInstanceNorm(nn.Module):
    """Instance norm with a per-class scale and shift (conditional IN, Dumoulin et al. 2017).

    The class has to enter *after* the normalisation: a class plane or bias added before an
    instance norm is (away from the borders) a per-channel constant that the norm subtracts.
    The per-class codes start random (scale ~ 1 + N(0, 0.3), shift ~ N(0, 1)).
    """

    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.gamma = nn.Embedding(num_classes, width)
        self.beta = nn.Embedding(num_classes, width)
        # random class codes from the start: zero-initialised codes move at most lr per Adam step,
        # too little in a few hundred steps (all classes then get the same translation)
        nn.init.normal_(self.gamma.weight, std=0.3)
        nn.init.normal_(self.beta.weight, std=1.0)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = Fn.instance_norm(h)
        return h * (1 + self.gamma(c))[:, :, None, None] + self.beta(c)[:, :, None, None]


class ResBlock(nn.Module):
    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm1 = CondInstanceNorm(width, num_classes)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = CondInstanceNorm(width, num_classes)

    def forward(self, h, c):
        return h + self.norm2(self.conv2(Fn.relu(self.norm1(self.conv1(h), c))), c)


class Translator(nn.Module):
    """Class-conditional ResNet-lite translator: ([0,1] image (B,C,H,W), class (B,)) -> [0,1] image.

    Stride-2 4x4 convs down to the bottleneck (one for H < 24, two otherwise; ``width`` channels
    there, half that one level up), ``res_blocks`` residual blocks at the bottleneck, stride-2 4x4
    transposed convs back to the exact input size (odd sizes via ``output_padding``), the last one
    straight to the image channels, then a sigmoid; every norm is a class-conditional instance norm.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 32, res_blocks: int = 2):
        super().__init__()
        C, H, W = image_shape
        n_down = 1 if min(H, W) < 24 else 2
        sizes = [(H, W)]
        for _ in range(n_down):
            h, w = sizes[-1]
            sizes.append((h // 2, w // 2))
        # channels per resolution, the image first; the bottleneck has `width`, the level above half
        ch = [C] + [max(width >> (n_down - k), 8) for k in range(1, n_down + 1)]
        self.down = nn.ModuleList(nn.Conv2d(ch[k - 1], ch[k], 4, stride=2, padding=1) for k in range(1, n_down + 1))
        self.down_norm = nn.ModuleList(CondInstanceNorm(ch[k], num_classes) for k in range(1, n_down + 1))
        self.blocks = nn.ModuleList(ResBlock(ch[-1], num_classes) for _ in range(res_blocks))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(ch[k], ch[k - 1], 4, stride=2, padding=1,
                               output_padding=(sizes[k - 1][0] - 2 * sizes[k][0], sizes[k - 1][1] - 2 * sizes[k][1]))
            for k in range(n_down, 0, -1))
        self.up_norm = nn.ModuleList(CondInstanceNorm(ch[k - 1], num_classes) for k in range(n_down, 1, -1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = x * 2 - 1
        for conv, norm in zip(self.down, self.down_norm):
            h = Fn.relu(norm(conv(h), c))
        for block in self.blocks:
            h = block(h, c)
        for conv, norm in zip(self.up[:-1], self.up_norm):
            h = Fn.relu(norm(conv(h), c))
        return torch.sigmoid(self.up[-1](h))


class PatchDiscriminator(nn.Module):
    """PatchGAN-lite: two stride-2 4x4 convs and a 3x3 head (a 2x2 patch map at 8 px, 7x7 at 28 px).

    With ``num_classes`` it is a projection discriminator (Miyato & Koyama 2018): each patch score
    gets ``<embed(c), features>`` added.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int = 0, width: int = 32):
        super().__init__()
        C = image_shape[0]
        half = max(width // 2, 8)
        self.features = nn.Sequential(
            nn.Conv2d(C, half, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(half, width, 4, stride=2, padding=1), nn.InstanceNorm2d(width, affine=True),
            nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Conv2d(width, 1, 3, padding=1)
        self.embed = nn.Embedding(num_classes, width) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x * 2 - 1)
        out = self.head(h)
        if self.embed is not None:
            out = out + (self.embed(c)[:, :, None, None] * h).sum(1, keepdim=True)
        return out


class CycleTranslatorPair(nn.Module):
    """What is cached and sampled from: ``G`` (source -> class c), ``F`` (class c -> source) and the
    ``source_mask`` buffer (which classes form the source domain; all False until fitted)."""

    def __init__(self, image_shape, num_classes: int, width: int = 32, res_blocks: int = 2):
        super().__init__()
        self.G = Translator(image_shape, num_classes, width, res_blocks)
        self.F = Translator(image_shape, num_classes, width, res_blocks)
        self.register_buffer("source_mask", torch.zeros(num_classes, dtype=torch.bool))


# ---------------------------------------------------------------------------------------- losses
def _lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return Fn.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def cycle_loss(net: CycleTranslatorPair, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Forward cycle L1 ``mean |F(G(x, c), c) - x|`` for source images x in [0, 1] (unweighted)."""
    return Fn.l1_loss(net.F(net.G(x, c), c), x)


def generator_losses(net: CycleTranslatorPair, d_t: PatchDiscriminator, d_s: PatchDiscriminator,
                     x: torch.Tensor, s: torch.Tensor, y: torch.Tensor, c: torch.Tensor,
                     lambda_cycle: float, lambda_id: float) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The generator-side CycleGAN losses on one batch.

    ``x``: source images (classes ``s``), ``y``: real images of the target classes ``c`` (all
    float in [0, 1]). Returns (losses, fake_t = G(x, c), fake_s = F(y, c)); ``losses["total"]`` is
    the weighted sum, the other entries unweighted. The identity term is estimated on the first
    ``ID_FRACTION`` of the batch (an unbiased estimate of the same mean at a quarter of its cost).
    Same-network passes are batched (instance norm is per image, so batching changes no output).
    """
    n = len(x)
    k = max(1, int(n * ID_FRACTION)) if lambda_id > 0 else 0  # identity term on the first k items
    g_out = net.G(torch.cat([x, y[:k]]), torch.cat([c, c[:k]]))
    f_out = net.F(torch.cat([y, x[:k]]), torch.cat([c, s[:k]]))
    fake_t, fake_s = g_out[:n], f_out[:n]
    rec_x = net.F(fake_t, c)
    rec_y = net.G(fake_s, c)
    losses = {
        "adv_t": _lsgan(d_t(fake_t, c), True),
        "adv_s": _lsgan(d_s(fake_s), True),
        "cycle_forward": Fn.l1_loss(rec_x, x),
        "cycle_backward": Fn.l1_loss(rec_y, y),
    }
    total = losses["adv_t"] + losses["adv_s"] + lambda_cycle * (losses["cycle_forward"] + losses["cycle_backward"])
    if k:
        losses["identity"] = Fn.l1_loss(g_out[n:], y[:k]) + Fn.l1_loss(f_out[n:], x[:k])
        total = total + lambda_id * lambda_cycle * losses["identity"]
    losses["total"] = total
    return losses, fake_t, fake_s


def source_classes(counts: list[int], source: str) -> list[int]:
    """The classes of the source domain (see the module docstring)."""
    top = max(counts)
    if source == "largest":
        return [k for k, n in enumerate(counts) if n == top]
    med = statistics.median(counts)
    return [k for k, n in enumerate(counts) if n >= med and n > 0]


def _class_sampler(labels: torch.Tensor, num_classes: int):
    """Index tensors to draw an image of class c uniformly: order[start[c] + floor(u * count[c])]."""
    order = torch.argsort(labels, stable=True)
    count = torch.bincount(labels, minlength=num_classes)
    start = torch.cumsum(count, 0) - count
    return order, start, count


# ---------------------------------------------------------------------------------------- method
@register_method
class CycleGANOversampler(GenerativeOversampler):
    """Majority -> minority translation with one class-conditional CycleGAN pair (see module doc)."""

    name = "cyclegan"
    summary = ("Majority->minority image-to-image translation (one class-conditional CycleGAN pair, "
               "LSGAN + cycle + identity losses) to fill every minority class")
    reference = ("Zhu, Park, Isola & Efros, Unpaired image-to-image translation using cycle-consistent "
                 "adversarial networks, ICCV 2017; Zhu et al., Emotion classification with data "
                 "augmentation using GANs, PAKDD 2018 (survey: image-level, image-to-image translation)")
    defaults = {**GenerativeOversampler.defaults, "source": "largest", "lambda_cycle": 10.0, "lambda_id": 0.5,
                "width": 32, "res_blocks": 2}

    def check(self) -> None:
        super().check()
        p = self.params
        if p["source"] not in SOURCES:
            raise UsageError(f"method {self.name!r}: source must be one of {', '.join(SOURCES)}, got {p['source']!r}")
        for key in ("lambda_cycle", "lambda_id"):
            p[key] = float(p[key])
            if not p[key] >= 0:
                raise UsageError(f"method {self.name!r}: {key} must be >= 0, got {p[key]}")
        for key, lo in (("width", 4), ("res_blocks", 0)):
            if int(p[key]) != p[key] or p[key] < lo:
                raise UsageError(f"method {self.name!r}: {key} must be an integer >= {lo}, got {p[key]!r}")
            p[key] = int(p[key])

    def build(self, image_shape, num_classes: int) -> CycleTranslatorPair:
        return CycleTranslatorPair(tuple(image_shape), num_classes, self.params["width"], self.params["res_blocks"])

    def discriminators(self, image_shape, num_classes: int) -> tuple[PatchDiscriminator, PatchDiscriminator]:
        """(D_t conditioned on the target class, D_s for the source domain)."""
        return (PatchDiscriminator(image_shape, num_classes, self.params["width"]),
                PatchDiscriminator(image_shape, 0, self.params["width"]))

    def generatable_classes(self, train: ImageSet) -> list[int]:
        """The target classes ``fit`` translates into: a deficit and at least one real image.
        ``G`` is never trained towards the other classes (the largest, the empty ones)."""
        counts = train.counts()
        top = max(counts)
        return [k for k, n in enumerate(counts) if 0 < n < top]

    def fit(self, generator: CycleTranslatorPair, train: ImageSet, ctx: Context, budget: dict) -> None:
        counts = train.counts()
        K = train.num_classes
        src = source_classes(counts, self.params["source"])
        mask = torch.zeros(K, dtype=torch.bool)
        mask[src] = True
        generator.source_mask.copy_(mask)
        top = max(counts)
        targets = [k for k, n in enumerate(counts) if 0 < n < top]
        if not targets:
            return
        device = ctx.device
        steps, batch, lr = int(budget["steps"]), int(budget["batch_size"]), float(budget["lr"])
        lam_c, lam_i = self.params["lambda_cycle"], self.params["lambda_id"]
        d_t, d_s = (d.to(device).train() for d in self.discriminators(train.image_shape, K))
        opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999), foreach=True)
        opt_d = torch.optim.Adam([*d_t.parameters(), *d_s.parameters()], lr=lr, betas=(0.5, 0.999), foreach=True)

        images = train.images.to(device)
        labels = train.labels
        src_idx = torch.nonzero(mask[labels]).flatten()
        order, start, count = _class_sampler(labels, K)
        target_t = torch.tensor(targets)
        rng = ctx.generator(f"{self.name}-fit")
        bar = self.progress(ctx, steps, self.name)
        for step in range(steps):
            xi = src_idx[torch.randint(len(src_idx), (batch,), generator=rng)]
            c = target_t[torch.randint(len(targets), (batch,), generator=rng)]
            u = torch.rand(batch, generator=rng)
            yi = order[start[c] + (u * count[c]).long().clamp_max(count[c] - 1)]
            x = images[xi.to(device)].float() / 255.0
            y = images[yi.to(device)].float() / 255.0
            s, c = labels[xi].to(device), c.to(device)

            # generators
            with frozen(d_t, d_s):
                losses, fake_t, fake_s = generator_losses(generator, d_t, d_s, x, s, y, c, lam_c, lam_i)
                optimise(opt_g, losses["total"])

            # discriminators (LSGAN, halved as in CycleGAN)
            pt = d_t(torch.cat([y, fake_t.detach()]), torch.cat([c, c]))
            ps = d_s(torch.cat([x, fake_s.detach()]))
            loss_d = 0.5 * (_lsgan(pt[:batch], True) + _lsgan(pt[batch:], False)
                            + _lsgan(ps[:batch], True) + _lsgan(ps[batch:], False))
            optimise(opt_d, loss_d)

            self.check_finite(self.name, step, g=losses["total"], d=loss_d)
            bar.update(1)
            if not ctx.quiet and (step % 10 == 0 or step == steps - 1):
                bar.set_postfix(g=f"{(losses['adv_t'] + losses['adv_s']).item():.3f}", d=f"{loss_d.item():.3f}",
                                cyc=f"{(losses['cycle_forward'] + losses['cycle_backward']).item():.3f}")
        bar.close()

    def sample(self, generator: CycleTranslatorPair, labels: torch.Tensor, train: ImageSet, ctx: Context,
               gen: torch.Generator) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        mask = generator.source_mask.detach().cpu()
        if not bool(mask.any()):  # never fitted on these counts (no deficit): derive the domain again
            mask = torch.zeros(train.num_classes, dtype=torch.bool)
            mask[source_classes(train.counts(), self.params["source"])] = True
        ctx.note("source_classes", torch.nonzero(mask).flatten().tolist())
        src_idx = torch.nonzero(mask[train.labels]).flatten()
        pick = src_idx[torch.randint(len(src_idx), (len(labels),), generator=gen)]
        device = next(generator.parameters()).device
        out = torch.empty((len(labels), *train.image_shape), dtype=torch.uint8)
        with torch.no_grad():
            for lo in range(0, len(labels), 256):
                x = train.images[pick[lo:lo + 256]].to(device).float() / 255.0
                y = generator.G(x, labels[lo:lo + 256].to(device))
                out[lo:lo + 256] = (y * 255.0).round().clamp(0, 255).to(torch.uint8).cpu()
        return out
