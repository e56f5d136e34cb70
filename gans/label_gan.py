"""label-gan: rebalanced label maps turned into images by a pix2pix-style conditional GAN.

Reproduces the survey's label-map synthesis for pixel-level imbalance (Liu et al. 2018: the label
map is rebalanced, then rendered into an image by a conditional GAN; pix2pix, Isola et al. CVPR
2017; pix2pixHD, Wang et al. CVPR 2018), with the suite's own choices:

1. **GAN.** A pix2pix generator (U-Net on the one-hot label map plus a void channel; dropout as
   its noise) against a PatchGAN on (label map, image) pairs, trained on the recipe's training
   pairs only (``gans/pix2pix.py``: the networks, and which parts of pix2pixHD are taken).
   Losses: LSGAN + ``lambda_l1`` * L1 to the real image (pix2pix's 100; void pixels count, they
   are real image pixels; padding does not) + ``lambda_fm`` * pix2pixHD's discriminator feature
   matching (its 10; per scale the mean over the discriminator's layers, then the mean over
   scales). Adam (betas 0.5 / 0.999, the budget's ``lr``) for both players, one update each per
   step; ``steps`` steps on batches of ``batch_size`` windows of ``crop`` px (a multiple of the
   U-Net's stride, at most an image's shorter side; smaller images padded with void), random
   images with replacement, random positions -- the profile's segmentation ``gan`` budget.
   The generator is cached as every GAN's (``gans/base.py``: same data, recipe, seed,
   parameters except ``blend`` / ``per_image``, budget and code; a rerun with another ``blend``
   reuses it; the record has ``generator_cache`` and ``generator_train_s``). Non-finite losses
   fail the cell (``DivergenceError``). No collapse check: every sample has its own label map.
2. **Rebalanced label maps.** The *host* class is the class with the most labelled pixels (digit
   scenes: background). The classes filled are ``ctx.minority`` without the host (none named:
   the non-host classes below the geometric midpoint of the non-host pixel counts); class ``c``
   gets ``deficits(non-host counts, blend)[c]`` more pixels (``full``: up to the largest
   non-host class's count; ``F``: ``int(F * deficit)``): its *target*. With one non-host class
   there is nothing to fill (binary fg/bg sets: the method leaves the set as it is). Shapes are
   real: the connected regions (8-connectivity, >= ``MIN_PIXELS`` pixels, or all of a class's
   regions when none is that large) of the filled classes in the training label maps. New maps
   are copies of *host maps*: the training maps holding no filled class (all maps when none
   exists), the quarter of them with the fewest non-host pixels (a copy brings its own regions
   along, as ``ros``'s copies: on rare-pixels IR 10, seed 0, copies of any such map grew the
   common digits from 12.6 k to 24.3 k pixels, more than the rare ones reached; the emptiest
   quarter keeps them within 8 %). Host maps are a seeded uniform choice; each copy gets up to
   ``per_image`` regions, their classes drawn in proportion to what each class still needs, a
   region of the class drawn uniformly and placed uniformly where all its pixels land on host
   pixels (25 positions, then another region, 3 regions, then the next slot): no other class
   and no void pixel is overwritten. Copies are made until every filled class reaches its
   target (or ``4 * regions needed + 20`` copies were tried): a class ends at its target plus
   less than one region (the last one pasted) plus what fallback host maps held. Existing rare
   regions are not enlarged (a dilated glyph is not a real shape). The record's ``label_gan``
   note has the host, the classes filled, the pixel counts ``before``, ``target`` and
   ``reached`` (of the returned set), the maps added and the regions pasted per class.
3. **Images.** Each new map is rendered by the generator (the whole map, padded with void to the
   stride; dropout drawn from a stream seeded by the cell); the pair (generated image, that
   rebalanced map) is appended, flagged synthetic, id ``<host map id>-label-gan<k>``.
4. **Sample quality.** A scene has no class, so quality is measured on *class regions*: every
   connected region (>= ``MIN_PIXELS``) of every class (void left out) cut out by its bounding
   box and resized to ``QUALITY_CROP`` px, labelled with its class. Per-class FID / KID /
   GAN-test (``quality.py``; ``fid_mean`` / ``kid_mean`` report as ``fid`` / ``kid``) of the
   generated images' region crops against those of the balanced source's training split, on a
   domain classifier trained on the real crops (``features.py``; cached on disk per source, and
   the crops in memory). A background region's box is most of a scene, so its crop scores the
   scene's look. The record's ``label_gan_quality_filled`` has FID / KID / GAN-test averaged
   over the filled classes alone. A PNG grid (per row a real training pair, a gap, a generated
   pair; label maps in the VOC palette, void light grey) goes under ``ctx.artifacts_dir``.
   Skipped without a source, or when the recipe relabels the source's classes.

Parameters: ``blend`` (full), ``per_image`` (4), ``width`` (16: channels of the first level of
both networks), ``depth`` (3 down-samplings, stride 8), ``d_layers`` (2 stride-2 PatchGAN layers:
34 px patches), ``scales`` (1; 2 = pix2pixHD's two-scale discriminator), ``lambda_l1`` (100),
``lambda_fm`` (10), ``crop`` (32).

Budget, measured on 32 px digit-scenes rare-pixels IR 10, seed 0, one core (CPU seconds; filled-
class FID of the region crops): Adam at lr 2e-4 leaves the generator grey after 200 steps of 16
(FID 12.5) where 2e-3 reaches 4.2; at equal time more, smaller batches win (120 x 16: 5.4,
200 x 8: 4.4, 300 x 4: 3.6 in 3.9 s); a second discriminator scale, lambda_l1 10, no feature
matching or a full-resolution output conv on the label map moved FID by less than seed-to-seed
spread or cost more than they gave. With ``{steps: 300, batch_size: 4, lr: 2e-3}`` a cell costs
10.8-11.2 s (erm 5.5-5.9 s) and reaches mIoU 0.20-0.22, rare-class IoU 0.13-0.16 over seeds 0-2
(erm 0.17-0.19, 0.00); the first cell on a source also trains the domain classifier (~16 s,
once per cache).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torchvision.utils import make_grid

from ..benchmarks.contract import Context
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..data_recipes.imageset import ImageSet
from ..data_recipes.recipes import midpoint_minority
from ..data_recipes.segset import SegSet
from .base import GenerativeOversampler, deficits, frozen, optimise, seeded_streams
from .grid import grid_scale, save_png
from .nets import to_signed, to_uint8
from .object_crops import resize
from .pix2pix import MultiScaleDiscriminator, UNetGenerator, one_hot

MIN_PIXELS = 4  # a region smaller than this is a speck, not a shape (unless a class has nothing else)
POSITIONS, REGIONS = 25, 3
HOST_SHARE = 4  # hosts: the emptiest quarter of the candidate maps
QUALITY_CROP = 12  # px side of the region crops FID / KID are measured on (cgan-paste's crop size)
EIGHT = np.ones((3, 3), dtype=bool)


# ---------------------------------------------------------------- the training pairs
@dataclass
class Pairs:
    """The recipe's training pairs as the GAN sees them: ``crop`` x ``crop`` windows of C-channel
    images and their label maps (what ``GenerativeOversampler``'s cache and ``build`` read)."""

    images: list[torch.Tensor]
    masks: list[torch.Tensor]
    num_classes: int
    ignore_index: int
    crop: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return int(self.images[0].shape[0]), self.crop, self.crop

    def counts(self) -> list[int]:
        total = torch.zeros(self.num_classes, dtype=torch.int64)
        for m in self.masks:
            total += torch.bincount(m[(m >= 0) & (m < self.num_classes)], minlength=self.num_classes)
        return total.tolist()


class WindowBatches:
    """Random ``S`` x ``S`` windows of random pairs (with replacement), from a seeded CPU generator:
    ``(images in [-1, 1] (B, C, S, S), label maps (B, S, S), valid (B, 1, S, S))``; images smaller
    than the window are padded (image 0, label void, valid 0)."""

    def __init__(self, pairs: Pairs, batch_size: int, gen: torch.Generator, device):
        self.pairs, self.batch_size, self.gen, self.device = pairs, int(batch_size), gen, device
        S = pairs.crop
        C = pairs.image_shape[0]
        self.images, self.masks, self.valid = [], [], []
        for img, m in zip(pairs.images, pairs.masks):
            H, W = m.shape
            h, w = max(H, S), max(W, S)
            x = torch.zeros(C, h, w, dtype=torch.uint8)
            y = torch.full((h, w), pairs.ignore_index, dtype=torch.int64)
            v = torch.zeros(1, h, w, dtype=torch.bool)
            x[:, :H, :W], y[:H, :W], v[:, :H, :W] = img, m, True
            self.images.append(x)
            self.masks.append(y)
            self.valid.append(v)
        self.same = len({tuple(m.shape) for m in self.masks}) == 1 and tuple(self.masks[0].shape) == (S, S)
        if self.same:  # the usual case (equal images of the window's size): one gather a batch
            self.stack = (torch.stack(self.images).to(device), torch.stack(self.masks).to(device))

    def __call__(self):
        S, n = self.pairs.crop, len(self.images)
        idx = torch.randint(n, (self.batch_size,), generator=self.gen)
        if self.same:
            x, y = self.stack[0][idx.to(self.device)], self.stack[1][idx.to(self.device)]
            return to_signed(x), y, torch.ones(len(idx), 1, S, S, device=self.device)
        xs, ys, vs = [], [], []
        for i in idx.tolist():
            h, w = self.masks[i].shape
            r = int(torch.randint(h - S + 1, (1,), generator=self.gen))
            c = int(torch.randint(w - S + 1, (1,), generator=self.gen))
            xs.append(self.images[i][:, r:r + S, c:c + S])
            ys.append(self.masks[i][r:r + S, c:c + S])
            vs.append(self.valid[i][:, r:r + S, c:c + S])
        return (to_signed(torch.stack(xs).to(self.device)), torch.stack(ys).to(self.device),
                torch.stack(vs).to(self.device).float())


def window(crop: int, stride: int, masks: list[torch.Tensor]) -> int:
    """The training window side: ``crop``, at most the largest shorter side of an image, rounded
    down to a multiple of ``stride`` (at least ``stride``; smaller images are padded)."""
    side = max(min(int(m.shape[0]), int(m.shape[1])) for m in masks)
    return max(stride, min(crop, side) // stride * stride)


# ---------------------------------------------------------------- regions
def regions(mask: torch.Tensor, c: int) -> list[tuple[int, int, np.ndarray]]:
    """The connected regions (8-connectivity) of class ``c`` in one label map:
    ``(top, left, bool mask of its bounding box)``."""
    arr = mask.numpy() == c
    if not arr.any():
        return []
    lab, _ = ndimage.label(arr, structure=EIGHT)
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        out.append((sl[0].start, sl[1].start, lab[sl] == k))
    return out


def class_regions(masks: list[torch.Tensor], classes: list[int]) -> dict[int, list[np.ndarray]]:
    """Per class, the shapes (bool masks) of its regions of >= MIN_PIXELS pixels in ``masks``
    (all of them where the class has no such region)."""
    out: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    specks: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    for m in masks:
        for c in classes:
            for _, _, shape in regions(m, c):
                (out if shape.sum() >= MIN_PIXELS else specks)[c].append(shape)
    return {c: out[c] or specks[c] for c in classes}


def host_class(counts: list[int]) -> int:
    return int(np.argmax(counts))


def filled_classes(counts: list[int], minority: list[int], host: int) -> list[int]:
    """The classes label-gan fills: ``minority`` without the host, or (none named) the non-host
    classes below the geometric midpoint of the non-host pixel counts (every non-host class below
    the largest when one has no pixel, which puts the midpoint at 0); classes with no pixel have
    no shape to paste and are left out."""
    others = [c for c in range(len(counts)) if c != host]
    if minority:
        fill = [c for c in minority if c != host]
    elif len(others) >= 2 and min(counts[c] for c in others) > 0:
        fill = [others[i] for i in midpoint_minority([counts[c] for c in others])]
    else:
        fill = [c for c in others if 0 < counts[c] < max(counts[o] for o in others)]
    return sorted(c for c in fill if counts[c] > 0)


def targets(counts: list[int], host: int, fill: list[int], blend: str) -> list[int]:
    """Pixels wanted per class: the ``deficits`` of the non-host counts for the filled classes."""
    others = [c for c in range(len(counts)) if c != host]
    gap = dict(zip(others, deficits([counts[c] for c in others], blend)))
    return [int(counts[c] + gap[c]) if c in fill else int(counts[c]) for c in range(len(counts))]


def rebalance(train: SegSet, host: int, fill: list[int], goal: list[int], per_image: int,
              rng: np.random.Generator) -> tuple[list[torch.Tensor], list[int], list[int]]:
    """New label maps (host copies with real regions of the filled classes pasted onto host
    pixels): ``(maps, host index of each, regions pasted per class)``; see the module docstring."""
    K = train.num_classes
    shapes = class_regions(train.masks, fill)
    fill = [c for c in fill if shapes[c]]
    have = np.array(train.pixel_counts(), dtype=np.int64)
    goal_arr = np.array(goal, dtype=np.int64)
    pasted = np.zeros(K, dtype=np.int64)
    maps: list[torch.Tensor] = []
    hosts_of: list[int] = []
    if not fill:
        return maps, hosts_of, pasted.tolist()
    clean = [i for i, m in enumerate(train.masks) if not bool(torch.isin(m, torch.tensor(fill)).any())]
    hosts = clean or list(range(len(train)))
    busy = [int(((m != host) & (m >= 0) & (m < K)).sum()) for m in (train.masks[i] for i in hosts)]
    keep = max(1, -(-len(hosts) // HOST_SHARE))
    hosts = [hosts[j] for j in sorted(range(len(hosts)), key=lambda j: (busy[j], j))[:keep]]
    mean_size = {c: float(np.mean([s.sum() for s in shapes[c]])) for c in fill}
    needed = sum(max(0, goal[c] - int(have[c])) / mean_size[c] for c in fill)
    for _ in range(int(4 * math.ceil(needed)) + 20):
        if (goal_arr - have)[fill].max() <= 0:
            break
        i = hosts[int(rng.integers(len(hosts)))]
        canvas = train.masks[i].clone()
        grid = canvas.numpy()  # shares memory with canvas
        H, W = grid.shape
        done = 0
        for _slot in range(per_image):
            on_canvas = np.bincount(grid[(grid >= 0) & (grid < K)].ravel(), minlength=K)
            need = np.clip(goal_arr - have - on_canvas, 0, None)[fill]  # the copy adds all it holds
            if need.sum() <= 0:
                break
            c = fill[int(rng.choice(len(fill), p=need / need.sum()))]
            for _try in range(REGIONS):
                shape = shapes[c][int(rng.integers(len(shapes[c])))]
                h, w = shape.shape
                if h > H or w > W:
                    continue
                for _pos in range(POSITIONS):
                    y, x = int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))
                    if (grid[y:y + h, x:x + w][shape] == host).all():
                        grid[y:y + h, x:x + w][shape] = c
                        pasted[c] += 1
                        done += 1
                        break
                else:
                    continue
                break
        if done:
            maps.append(canvas)
            hosts_of.append(i)
            have += np.bincount(grid[(grid >= 0) & (grid < K)].ravel(), minlength=K)
    return maps, hosts_of, pasted.tolist()


# ---------------------------------------------------------------- rendering
@torch.no_grad()
def render(generator: UNetGenerator, maps: list[torch.Tensor], device, batch_size: int = 64) -> list[torch.Tensor]:
    """uint8 (C, H, W) images for label maps (any sizes: padded with void to the stride, cropped
    back; equal sizes batched). Dropout draws from the global stream: the caller seeds it."""
    K, s = generator.num_classes, generator.stride
    out: list[torch.Tensor | None] = [None] * len(maps)
    by_shape: dict[tuple, list[int]] = {}
    for i, m in enumerate(maps):
        by_shape.setdefault(tuple(m.shape), []).append(i)
    for (H, W), ids in by_shape.items():
        ph, pw = (-H) % s, (-W) % s
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            y = torch.stack([maps[i] for i in chunk])
            y = F.pad(y, (0, pw, 0, ph), value=K)  # void
            x = to_uint8(generator(one_hot(y.to(device), K)))[..., :H, :W].cpu()
            for i, img in zip(chunk, x):
                out[i] = img
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------- quality
def region_crops(images: list[torch.Tensor], masks: list[torch.Tensor], class_names: list[str],
                 size: int = QUALITY_CROP) -> ImageSet:
    """Every connected region (>= MIN_PIXELS) of every class: its bounding box's pixels resized to
    ``size`` x ``size``, labelled with the class (the items FID / KID are measured on)."""
    K = len(class_names)
    crops, labels = [], []
    for img, m in zip(images, masks):
        for c in m[(m >= 0) & (m < K)].unique().tolist():
            for top, left, shape in regions(m, c):
                if shape.sum() < MIN_PIXELS:
                    continue
                h, w = shape.shape
                crops.append(resize(img[:, top:top + h, left:left + w].float(), (size, size)))
                labels.append(c)
    C = int(images[0].shape[0]) if images else 1
    stack = (torch.stack(crops).round_().clamp_(0, 255).to(torch.uint8) if crops
             else torch.zeros((0, C, size, size), dtype=torch.uint8))
    return ImageSet(stack, torch.tensor(labels, dtype=torch.int64), list(class_names))


def palette(K: int) -> torch.Tensor:
    """(K + 1, 3) uint8: the PASCAL VOC colour map for the classes, light grey for void (last)."""
    colours = []
    for c in range(K):
        r = g = b = 0
        v = c
        for shift in range(7, -1, -1):
            r |= ((v >> 0) & 1) << shift
            g |= ((v >> 1) & 1) << shift
            b |= ((v >> 2) & 1) << shift
            v >>= 3
        colours.append((r, g, b))
    colours.append((224, 224, 192))
    return torch.tensor(colours, dtype=torch.uint8)


def colourise(mask: torch.Tensor, K: int) -> torch.Tensor:
    m = mask.clone()
    m[(m < 0) | (m >= K)] = K
    return palette(K)[m].permute(2, 0, 1)


def save_pairs_grid(real: SegSet, fake: SegSet, path: Path, rows: int = 8, seed: int = 0) -> Path:
    """PNG: per row a real training pair (colourised map | image), a blank gap, a generated pair
    (its rebalanced map | generated image); seeded choices, cells padded to the largest image,
    grey images as RGB, upscaled (nearest) to >= 96 px."""
    g = torch.Generator().manual_seed(int(seed))
    K = real.num_classes
    rows = min(rows, len(real), len(fake))
    pick_r = torch.randperm(len(real), generator=g)[:rows].tolist()
    pick_f = torch.randperm(len(fake), generator=g)[:rows].tolist()
    chosen = [(real, i) for i in pick_r] + [(fake, i) for i in pick_f]
    H = max(int(s.masks[i].shape[0]) for s, i in chosen)
    W = max(int(s.masks[i].shape[1]) for s, i in chosen)
    scale = grid_scale((1, H, W), 96)

    def cell(x: torch.Tensor) -> torch.Tensor:
        x = x.float().div(255.0)
        x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
        out = torch.ones(3, H, W)
        out[:, :x.shape[1], :x.shape[2]] = x
        return out.repeat_interleave(scale, 1).repeat_interleave(scale, 2)

    cells = []
    for r in range(rows):
        for s, i in ((real, pick_r[r]), (fake, pick_f[r])):
            cells += [cell(colourise(s.masks[i], K)), cell(s.images[i])]
            if s is real:
                cells.append(torch.ones(3, H * scale, W * scale))
    return save_png(make_grid(cells, nrow=5, padding=1, pad_value=1.0), path)


# ---------------------------------------------------------------- the method
@register_method
class LabelGan(GenerativeOversampler):
    """Rebalanced label maps rendered by a pix2pix-style conditional GAN (module docstring)."""

    name = "label-gan"
    sampling_only = ("blend", "per_image")  # step 2, not the generator: not in the cache key
    tracks = ("segmentation",)
    summary = ("label maps rebalanced with real rare-class regions, rendered into images by a pix2pix "
               "conditional GAN trained on the training pairs")
    reference = ("Liu et al. 2018 (label-map synthesis); Isola, Zhu, Zhou & Efros, pix2pix, CVPR 2017; "
                 "Wang et al., pix2pixHD, CVPR 2018")
    defaults = {**GenerativeOversampler.defaults, "per_image": 4, "width": 16, "depth": 3, "d_layers": 2,
                "scales": 1, "lambda_l1": 100.0, "lambda_fm": 10.0, "crop": 32}
    betas = (0.5, 0.999)

    def check(self) -> None:
        super().check()
        self.require(1, "per_image", "width", "d_layers", "scales")
        self.require(2, "depth")
        self.require(0, "lambda_l1", "lambda_fm")
        self.require(2 ** int(self.params["depth"]), "crop")
        if int(self.params["depth"]) > 8:
            raise UsageError(f"method {self.name!r}: depth must be <= 8, got {self.params['depth']}")

    # ------------------------------------------------------------ networks
    def build(self, image_shape, num_classes: int) -> UNetGenerator:
        return UNetGenerator(num_classes, int(image_shape[0]), int(self.params["width"]), int(self.params["depth"]))

    def discriminator(self, image_shape, num_classes: int) -> MultiScaleDiscriminator:
        return MultiScaleDiscriminator(num_classes + 1 + int(image_shape[0]), int(self.params["width"]),
                                       int(self.params["d_layers"]), int(self.params["scales"]))

    def fit(self, generator: UNetGenerator, train: Pairs, ctx: Context, budget: dict) -> None:
        device, K = ctx.device, train.num_classes
        steps, batch_size, lr = int(budget["steps"]), int(budget["batch_size"]), float(budget["lr"])
        D = self.discriminator(train.image_shape, K).to(device)
        opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=self.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=self.betas)
        draw = WindowBatches(train, batch_size, ctx.generator(f"{self.name}-fit"), device)
        l1_w, fm_w = float(self.params["lambda_l1"]), float(self.params["lambda_fm"])
        generator.train()
        D.train()
        with self.progress(ctx, steps, self.name) as bar:
            for step in range(steps):
                real, maps, valid = draw()
                labels = one_hot(maps, K)
                fake = generator(labels)
                out_real = D(labels, real)
                out_fake = D(labels, fake.detach())
                loss_d = 0.5 * sum(((r - 1) ** 2).mean() + (f ** 2).mean()
                                   for (r, _), (f, _) in zip(out_real, out_fake))
                optimise(opt_d, loss_d)
                with frozen(D):
                    out = D(labels, fake)
                    with torch.no_grad():  # the real features under the same (updated) weights
                        ref = D(labels, real)
                    adv = sum(((o - 1) ** 2).mean() for o, _ in out)
                    fm = sum(sum(F.l1_loss(a, b) for a, b in zip(fo, ro)) / len(fo)
                             for (_, fo), (_, ro) in zip(out, ref)) / len(out)
                    l1 = ((fake - real).abs() * valid).sum() / (valid.sum() * fake.shape[1]).clamp_min(1.0)
                    loss_g = adv + fm_w * fm + l1_w * l1
                    optimise(opt_g, loss_g)
                self.check_finite(self.name, step, d=loss_d.detach(), g=loss_g.detach())
                bar.update(1)
                if step % 20 == 0 or step == steps - 1:
                    bar.set_postfix(d=f"{float(loss_d.detach()):.3f}", l1=f"{float(l1.detach()):.3f}")

    def sample(self, generator: UNetGenerator, labels, train, ctx: Context, gen: torch.Generator):
        """Images for label maps ``labels`` (a list of (H, W) int64 maps; ``gen`` seeds the dropout)."""
        device = torch.device(ctx.device)
        with seeded_streams(int(torch.randint(2**62, (1,), generator=gen)), device):
            return render(generator, list(labels), device)

    # ------------------------------------------------------------ the hook
    def prepare(self, train: SegSet, ctx: Context) -> SegSet:
        if not isinstance(train, SegSet):
            raise UsageError(f"method {self.name!r} runs on the segmentation track (a SegSet), got "
                             f"{type(train).__name__}")
        K = train.num_classes
        counts = train.pixel_counts()
        host = host_class(counts)
        fill = filled_classes(counts, list(ctx.minority), host)
        goal = targets(counts, host, fill, str(self.params["blend"]))
        maps, hosts_of, pasted = rebalance(train, host, fill, goal, int(self.params["per_image"]),
                                           ctx.rng(f"{self.name}-rebalance"))
        note = {"host": host, "fill": fill, "target": goal, "before": counts, "maps_added": len(maps),
                "regions_pasted": pasted}
        if not maps:
            ctx.note("label_gan", {**note, "reached": counts, "skipped": "nothing to generate"})
            return train
        budget = self.gan_budget(ctx)
        stride = 2 ** int(self.params["depth"])
        pairs = Pairs(list(train.images), list(train.masks), K, train.ignore_index,
                      window(int(self.params["crop"]), stride, train.masks))
        generator = self._generator(pairs, ctx, budget)
        generator.eval()
        images = self.sample(generator, maps, pairs, ctx, ctx.generator(f"{self.name}-sample"))
        new = SegSet(images, maps, list(train.class_names), train.ignore_index,
                     torch.ones(len(maps), dtype=torch.bool),
                     [f"{train.ids[i]}-label-gan{k}" for k, i in enumerate(hosts_of)])
        out = SegSet(list(train.images) + new.images, list(train.masks) + new.masks, list(train.class_names),
                     train.ignore_index, torch.cat([train.synthetic, new.synthetic]), list(train.ids) + new.ids)
        ctx.note("label_gan", {**note, "reached": out.pixel_counts(), "window": pairs.crop})
        self._quality(train, new, fill, ctx, budget)
        return out

    def _quality(self, train: SegSet, new: SegSet, fill: list[int], ctx: Context, budget: dict) -> None:
        """FID / KID / GAN-test of the generated images' region crops vs the source's; the grid."""
        from .features import domain_classifier
        from .quality import sample_quality

        if ctx.source is None:
            return
        if list(ctx.source.train.class_names) != list(train.class_names):
            ctx.note("sample_quality_skipped", "the recipe relabels the source's classes")
            return
        names = list(train.class_names)
        real = _source_crops(ctx.source, names)
        fake = region_crops(new.images, new.masks, names)
        present = [c for c, n in enumerate(real.counts()) if n >= 2]
        if len(present) < 2 or len(fake) == 0:
            ctx.note("sample_quality_skipped", "fewer than two classes have regions to crop")
        else:
            info = ctx.source.info
            fingerprint = json.dumps({"source": info.get("fingerprint"), "split": info.get("split"),
                                      "crops": "label-gan-regions", "size": QUALITY_CROP, "min_pixels": MIN_PIXELS},
                                     sort_keys=True, default=str)
            classifier, hit = domain_classifier(real, device=ctx.device, cache_dir=ctx.cache_dir, seed=0,
                                                epochs=int(budget.get("feature_epochs", 15)), fingerprint=fingerprint)
            ctx.note("feature_extractor_cache", "hit" if hit else ("miss" if ctx.cache_dir else "off"))
            quality = sample_quality(real, fake, classifier, device=ctx.device)
            ctx.metrics.update(quality)
            ctx.note("label_gan_quality_filled", {
                key: _mean_of(quality[f"{key}_per_class"], fill) for key in ("fid", "kid", "gan_test")})
        if ctx.artifacts_dir is not None:
            path = save_pairs_grid(train, new, Path(ctx.artifacts_dir) / f"{ctx.artifact_stem}.png", seed=ctx.seed)
            ctx.note("samples_png", str(path))


_SOURCE_CROPS: dict[str, ImageSet] = {}  # in-process: the region crops of a source's training split


def _source_crops(source, names: list[str]) -> ImageSet:
    """``region_crops`` of ``source.train``, kept in memory per source fingerprint (every cell of a
    worker on one source measures against the same crops)."""
    fingerprint = source.info.get("fingerprint") if isinstance(getattr(source, "info", None), dict) else None
    key = json.dumps([fingerprint, source.info.get("split"), names], default=str) if fingerprint else None
    if key is not None and key in _SOURCE_CROPS:
        return _SOURCE_CROPS[key]
    crops = region_crops(source.train.images, source.train.masks, names)
    if key is not None:
        if len(_SOURCE_CROPS) >= 4:
            _SOURCE_CROPS.pop(next(iter(_SOURCE_CROPS)))
        _SOURCE_CROPS[key] = crops
    return crops


def _mean_of(values: list, classes: list[int]) -> float | None:
    kept = [values[c] for c in classes if values[c] is not None]
    return float(np.mean(kept)) if kept else None
