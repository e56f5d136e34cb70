"""SR-GAN: feature super-resolution of small objects, trained against a discriminator and with the
detector's own loss (Li et al., Perceptual Generative Adversarial Networks for Small Object
Detection, CVPR 2017; the same idea on images: Bai et al., SOD-MTGAN, ECCV 2018).

Perceptual GAN's design on Faster R-CNN's pooled ROI features (N, C, 7, 7):

* the *generator* G, a small residual conv net (a 3×3 convolution, ``blocks`` residual blocks of
  two 3×3 convolutions with a ReLU between them and a skip, a 3×3 output convolution; all C wide),
  outputs a residual ``r = G(f)`` that is added to the features of the ROIs whose proposal box is
  *small* (the paper's "the generator learns the residual representation between small and
  large objects"); the other ROIs pass unchanged. This runs through the detector's
  ``roi_enhance_hook``, in training *and* evaluation, so every small proposal is classified
  and regressed from its enhanced features;
* G is registered in the detector (``detector.sr_generator``) before the track builds its
  optimiser, so the detector's SGD trains it with the detection loss -- the paper's
  *perception* branch (the box head's classification and regression on the enhanced features);
* the *discriminator* D (an MLP on the flattened (C, 7, 7) features: C·49 → 256 → 1, LeakyReLU
  0.2; the paper's adversarial branch is fully connected too) is not in the detector: it lives
  on the method object with its own Adam optimiser (``lr``, betas (0.5, 0.999)) and learns to
  tell the enhanced features of small *object* ROIs (fake) from the features of the object ROIs
  that are not small (real: medium and large objects), from the last training forward's
  features, detached. Object ROIs are the sampled proposals matched to a ground-truth object;
  background proposals -- about three quarters of Faster R-CNN's sampled ROIs -- are in neither
  set, as the paper contrasts large *objects* with enhanced small *objects* (version 1 used all
  small and all not-small proposals, background included);
* ``adversary`` first makes one D step per batch (BCE with logits, mean over the real and mean
  over the fake ROIs, summed), then returns the generator's adversarial term
  ``adv_weight · BCE(D(f_s + G(f_s)), real)`` with D frozen (its parameters take no gradient),
  which the track adds to the detection loss. ``adv_weight`` (λ, default 0.1) balances the
  adversarial and perception branches (the paper weighs the two branches' losses; 0.1 keeps the
  detection loss dominant on our small budgets). A batch without a small or without a
  not-small ROI makes no D step and adds no term (None).

Choices (documented deviations):

* the generator reads the pooled ROI features themselves (FPN features), not the paper's
  lower-level conv features (its generator takes conv1-level features of the small object and
  learns the residual towards the large objects' conv5 features): torchvision's ROI head pools one
  FPN level per proposal and exposes no lower-level features per ROI, so G's input is what the
  box head reads; no batch-norm in G (ROI batches mix few small ROIs and
  the hook runs in evaluation too); its output convolution starts at 0.1× its Kaiming
  initialisation, so the enhancement starts as a small perturbation; D's output layer starts at
  zero (logit 0 for every ROI: D starts undecided), since the ROI features' scale grows while
  the backbone trains (with a Kaiming-initialised output layer D's loss rose from 2.4 to 5.8
  over the smoke cell's 13 steps at lr 1e-4; from zero it falls from log 4 = 1.386);
* the adversarial term trains G only: it is computed on ``f_s.detach() + G(f_s.detach())``
  (recomputed from the stored features; the same values as the hook's), so it never moves the
  backbone, whose features are D's "real" samples too; the detection loss trains G and the
  backbone as usual;
* *small* is a proposal box of area below the dataset's small/medium threshold,
  ``ctx.source.info["area_ranges"]["small"][1]`` (COCO's 32² for VOC/COCO, the scaled
  ``(32·S/256)²`` for digit-scenes), else, with no source, the digit-scenes rule
  ``(32·S/256)²`` with S the detector's input side. Proposal boxes are in the detector's input
  pixels, which are the images' own for the track's detectors (input size = the largest image
  side); for VOC/COCO resized with ``image_size`` the threshold stays COCO's original-pixel one
  (the hook does not know each image's original scale);
* models: Faster R-CNN (``faster-rcnn``, ``faster-rcnn-resnet18``), whose ROI head is where the
  features are pooled; on another detector (FCOS, RetinaNet) ``adapt_model`` leaves it
  untouched and the method does nothing.

There is no FID/KID: the generation is feature-level (no images are generated).

Noted in the record (``extras.sr_gan``): the threshold and where it came from, the mean fraction
of small ROIs per training forward (and in evaluation), the D steps and skipped batches, and per
epoch the mean D loss, the mean generator BCE (before λ) and D's accuracy on the batch it
stepped on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..benchmarks.contract.context import Context
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import Method, register_method
from ..tasks.detection.models import SOFTMAX_HEAD_MODELS

OUT_INIT_SCALE = 0.1  # G's output convolution starts at this fraction of its Kaiming init
D_HIDDEN = 256


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualGenerator(nn.Module):
    """G: ROI features (n, C, d, d) -> residual (n, C, d, d)."""

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        self.stem = nn.Conv2d(channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.out = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(F.relu(self.stem(x))))


class Discriminator(nn.Module):
    """D: ROI features (n, C, d, d) -> real/fake logit (n,)."""

    def __init__(self, channels: int, d: int, hidden: int = D_HIDDEN):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(channels * d * d, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[:, 0]


def _init(net: nn.Module, gen: torch.Generator, nonlinearity: str = "relu") -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2 if nonlinearity == "leaky_relu" else 0.0,
                                        nonlinearity=nonlinearity, generator=gen)
                nn.init.zeros_(m.bias)


def _roi_heads(detector):
    heads = getattr(getattr(detector, "model", None), "roi_heads", None)
    if heads is None or not hasattr(detector, "roi_enhance_hook") or not hasattr(heads, "box_roi_pool"):
        return None
    return heads


def box_areas(proposals: list[Tensor]) -> Tensor:
    """Areas (N,) of the proposal boxes (XYXY) of all images, in the order the ROI pool stacks them."""
    boxes = torch.cat([p.reshape(-1, 4) for p in proposals])
    return (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)


def small_threshold(ctx: Context, image_side: int) -> tuple[float, str]:
    """The small/medium box-area threshold and where it came from."""
    ranges = (getattr(ctx.source, "info", None) or {}).get("area_ranges") if ctx.source is not None else None
    if ranges and "small" in ranges:
        return float(ranges["small"][1]), "source area_ranges"
    return (32.0 * image_side / 256.0) ** 2, f"(32*S/256)^2 with S = {image_side} (the detector's input side)"


@register_method
class SRGAN(Method):
    """Perceptual GAN's feature super-resolution on Faster R-CNN's ROI features (see the module
    docstring): a residual generator in the detector enhances small-proposal features, trained by
    the detection loss and against a discriminator that tells them from larger objects' features."""

    name = "sr-gan"
    family = "gan"
    tracks = ("detection",)
    models = {"detection": SOFTMAX_HEAD_MODELS}
    version = 2  # 2: D's sets are object ROIs only (1: all proposals, background included)
    summary = ("Perceptual GAN: a residual generator super-resolves small-ROI features, trained by the "
               "detection loss and adversarially against large-object features")
    reference = ("Li, Liang, Wei, Xu, Feng & Yan, Perceptual Generative Adversarial Networks for Small Object "
                 "Detection, CVPR 2017; Bai, Zhang, Ding & Ghanem, SOD-MTGAN, ECCV 2018")
    defaults = {"adv_weight": 0.1, "lr": 1.0e-4, "blocks": 2}

    def check(self) -> None:
        p = self.params
        if not float(p["adv_weight"]) >= 0.0:
            raise UsageError(f"method 'sr-gan': adv_weight must be >= 0, got {p['adv_weight']}")
        if not float(p["lr"]) > 0.0:
            raise UsageError(f"method 'sr-gan': lr must be > 0, got {p['lr']}")
        if int(p["blocks"]) < 0:
            raise UsageError(f"method 'sr-gan': blocks must be >= 0, got {p['blocks']}")

    # ----------------------------------------------------------------- set-up
    def adapt_model(self, model, ctx: Context):
        self.generator = self.discriminator = None
        self._last = None
        heads = _roi_heads(model)
        if heads is None:  # no ROI head (FCOS, RetinaNet): nothing to enhance
            return model
        size = heads.box_roi_pool.output_size
        d = int(size if isinstance(size, int) else size[0])
        channels = int(model.model.backbone.out_channels)
        side = int(model.model.transform.max_size)
        self.threshold, self.threshold_from = small_threshold(ctx, side)
        with torch.random.fork_rng(devices=[]):  # leave the global stream (the detector's) alone
            G = ResidualGenerator(channels, int(self.params["blocks"]))
            D = Discriminator(channels, d)
        _init(G, ctx.generator("sr-gan-generator"))
        with torch.no_grad():
            G.out.weight.mul_(OUT_INIT_SCALE)
        _init(D, ctx.generator("sr-gan-discriminator"), "leaky_relu")
        with torch.no_grad():
            D.net[-1].weight.zero_()  # D starts undecided (logit 0), whatever the features' scale
        model.sr_generator = G  # a submodule: in detector.parameters(), trained by the detection loss
        self.generator = G
        self.discriminator = D.to(ctx.device)
        self.optimizer = torch.optim.Adam(D.parameters(), lr=float(self.params["lr"]), betas=(0.5, 0.999))
        self._ctx = ctx
        self._stats = {"train_rois": 0, "train_small": 0, "train_forwards": 0, "train_fraction_sum": 0.0,
                       "train_background_left_out": 0,
                       "eval_rois": 0, "eval_small": 0, "d_steps": 0, "skipped": 0, "epochs": {}}
        model.roi_enhance_hook = self._hook
        self._note(ctx)
        return model

    # ----------------------------------------------------------------- the ROI hook
    def _hook(self, features: Tensor, proposals: list[Tensor], classes: Tensor | None = None) -> Tensor:
        """Add G's residual to the small proposals' features; in training remember what the
        adversarial step needs: the features of the small and of the not-small *object* ROIs
        (``classes`` >= 0), detached -- background proposals are in neither of D's sets."""
        G = self.generator
        small = box_areas(proposals).to(features.device) < self.threshold
        idx = small.nonzero().flatten()
        training = G.training and torch.is_grad_enabled()
        st = self._stats
        n = features.shape[0]
        if training:
            st["train_rois"] += n
            st["train_small"] += len(idx)
            st["train_forwards"] += 1
            st["train_fraction_sum"] += len(idx) / max(n, 1)
            objects = (torch.ones_like(small) if classes is None else classes.to(small.device) >= 0)
            st["train_background_left_out"] += int((~objects).sum())
            self._last = (features.detach()[small & objects], features.detach()[~small & objects])
        else:
            st["eval_rois"] += n
            st["eval_small"] += len(idx)
            self._note(self._ctx)  # the record is read after evaluation
        if len(idx) == 0:
            return features
        return features.index_add(0, idx, G(features[idx]))

    # ----------------------------------------------------------------- D's step and G's adversarial term
    def adversary(self, model, batch, ctx: Context):
        last, self._last = getattr(self, "_last", None), None
        if getattr(self, "generator", None) is None or last is None:
            return None
        small, real = last
        epoch = self._stats["epochs"].setdefault(str(int(ctx.epoch)), {"d_loss": 0.0, "g_bce": 0.0,
                                                                      "d_acc": 0.0, "steps": 0})
        if len(small) == 0 or len(real) == 0:
            self._stats["skipped"] += 1
            self._note(ctx)
            return None
        G, D = self.generator, self.discriminator
        if next(D.parameters()).device != small.device:
            D.to(small.device)
        fake = small + G(small)  # the hook's enhanced features, with a graph through G only
        # D's step on detached features: real = not-small ROIs, fake = enhanced small ROIs
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self.optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # G's term with D frozen (its parameters take no gradient from the detector's backward)
        for p in D.parameters():
            p.requires_grad_(False)
        try:
            logits = D(fake)
        finally:
            for p in D.parameters():
                p.requires_grad_(True)
        g_bce = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        with torch.no_grad():
            acc = 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean())
        epoch["d_loss"] += float(d_loss.detach())
        epoch["g_bce"] += float(g_bce.detach())
        epoch["d_acc"] += float(acc)
        epoch["steps"] += 1
        self._stats["d_steps"] += 1
        self._note(ctx)
        return float(self.params["adv_weight"]) * g_bce

    def _note(self, ctx: Context) -> None:
        st = self._stats
        ctx.note("sr_gan", {
            "small_area_threshold": round(float(self.threshold), 6),
            "threshold_from": self.threshold_from,
            "mean_small_roi_fraction": round(st["train_fraction_sum"] / max(st["train_forwards"], 1), 6),
            "train_rois": st["train_rois"], "train_small_rois": st["train_small"],
            "background_rois_left_out_of_d": st["train_background_left_out"],
            "eval_small_roi_fraction": round(st["eval_small"] / max(st["eval_rois"], 1), 6),
            "d_steps": st["d_steps"], "skipped_batches": st["skipped"],
            "per_epoch": [{"epoch": int(e), "steps": v["steps"],
                           "d_loss": round(v["d_loss"] / max(v["steps"], 1), 6),
                           "g_adv_bce": round(v["g_bce"] / max(v["steps"], 1), 6),
                           "d_accuracy": round(v["d_acc"] / max(v["steps"], 1), 6)}
                          for e, v in sorted(st["epochs"].items(), key=lambda kv: int(kv[0]))],
        })
