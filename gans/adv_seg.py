"""adv-seg: adversarial training of the segmenter against an (image, label map) discriminator.

Luc, Couprie, Chintala & Verbeek, Semantic Segmentation using Adversarial Networks (NIPS 2016
workshop on adversarial training). A discriminator ``a`` (``pair_discriminator.py``) tells real
pairs (image, ground-truth label map) from fake ones (image, the segmenter's softmax). The paper's
hybrid objective is ``sum_n mce(s(x_n), y_n) - lam [bce(a(x_n, y_n), 1) + bce(a(x_n, s(x_n)), 0)]``;
as in the paper the segmenter minimises ``mce + lam * bce(a(x, s(x)), 1)`` (the non-saturating
"flip" of the second term), the discriminator ``bce(a(x, y), 1) + bce(a(x, s(x)), 0)``.

How it runs in the track (the ``adversary`` hook, once per training batch):

1. ``adapt_model`` wraps the segmenter in a :class:`~.pair_discriminator.LogitCache`, which keeps
   the logits of the training forward the track's loss made; the hook takes them from there, so
   the segmenter runs once per step, as for ``erm`` (a second ``segmenter(x)`` would run
   BatchNorm in training mode twice per step: running statistics moved twice, and the
   adversarial term computed on another forward than the loss). Without the wrapper (a hybrid
   whose other part adapts the model) the hook runs ``segmenter(x)`` itself and the record counts
   those ``extra_forwards``.
2. Discriminator step(s) first (``d_steps``, default 1: the paper alternates updates of the two
   networks): real and fake pairs of this batch, the segmenter's probabilities *detached*, one
   Adam step of the discriminator's own optimiser (``d_lr`` 2e-4, betas (0.5, 0.999): the DCGAN /
   pix2pix settings; a method parameter, not the profile's ``gan`` lr, which ``label-gan``'s
   generator sets for its own, much shorter, training).
   The discriminator is not a submodule of the model, so the track's optimiser never sees it, and
   the detached input means its step leaves the segmenter's gradients untouched; it has no
   BatchNorm.
3. The segmenter's term ``lam * bce(a(x, softmax), 1)`` with the (just updated) discriminator
   frozen is returned; the track adds it to the pixel cross-entropy (``criterion`` stays the
   track's) and takes its one optimiser step.

Choices. ``encoding`` ``scaling`` (tau 0.9: real label maps soften the true class to
``max(tau, s_y)``, so exact one-hot vectors give nothing away; see ``pair_discriminator.py``) by the
selection below; ``basic`` (the probabilities as they are) and ``product`` (the image times each
class map) are there too; the label map enters beside the image branch as in the paper's
Stanford Background adversary. Void pixels carry zero label vectors in real and fake pairs alike.
The discriminator is that adversary with every width divided by eight (``width`` 8: branches 8 and 2 ->
8, trunk 16 / 32 / 64, where the paper has 64, 16 -> 64, 128 / 256 / 512), fed at half resolution
(``downsample`` 2): width 16 at full resolution cost ~30 s a cell on one core, width 8 at half
resolution adds ~3.5 s to erm's ~6.7 s (same machine, under load).

Selection of ``lam`` and ``encoding`` (the paper tunes ``lam`` per dataset, with networks far
larger than ours), on a *validation* split, never the test split, with the committed command
``imbench run select`` (``benchmarks/suites/select.yaml``; README, "Choosing defaults"): digit-scenes
32 px, rare-pixels IR 10, quick profile (600 steps), unet, a seeded stratified 20 % of the recipe's
training images evaluated and the rest trained on, seeds 0-2, ``{basic, scaling} x lam {0.01, 0.1,
0.5}`` (the same grid as ``scgan``'s). Validation mIoU: erm 0.469; ``scaling`` 0.473 / 0.437 /
0.216, ``basic`` 0.474 / 0.391 / 0.211 -- so ``scaling`` at 0.01 stays (the best two are within
noise, std ~0.04); every configuration is within noise of erm or below it: the adversarial term
asks for realistic label maps, not for the rare classes. (An earlier default, ``basic`` at 0.1,
had been picked on the test split.) Cost per cell at the defaults, at the former 150-step budget
(``imbench run segmentation --methods erm,adv-seg,scgan``, 2 one-thread workers, seeds 0-2):
rare-pixels 7.0-7.6 s (erm 4.3-5.0), fg-bg 5.4-5.7 s (erm 3.1-3.2) -- the discriminator's step on
the batch's real and fake pairs, then the term's forward and backward.

Noted in the record (``extras.adv_seg``): the settings, and per epoch the discriminator's mean
loss, its accuracy on real and on fake pairs, and the segmenter's mean adversarial BCE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..benchmarks.contract import Context
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import Method, register_method
from ..benchmarks.contract.track import DivergenceError
from .base import frozen
from .pair_discriminator import ENCODINGS, LogitCache, PairDiscriminator, encode, one_hot, scaled_truth, valid_mask

DEFAULT_D_LR = 2.0e-4


@register_method
class AdvSeg(Method):
    """Segmenter trained against an (image, label map) discriminator (see the module docstring)."""

    name = "adv-seg"
    family = "gan"
    tracks = ("segmentation",)
    summary = ("adversarial segmentation: pixel CE + lam * BCE of an (image, label map) discriminator "
               "fooled by the segmenter's softmax")
    reference = ("Luc, Couprie, Chintala & Verbeek, Semantic Segmentation using Adversarial Networks, "
                 "NIPS 2016 workshop on adversarial training")
    defaults = {"lam": 0.01, "encoding": "scaling", "tau": 0.9, "width": 8, "downsample": 2, "d_steps": 1,
                "d_lr": DEFAULT_D_LR}
    record_key = "adv_seg"

    def __init__(self, **params):
        super().__init__(**params)
        self.disc: PairDiscriminator | None = None
        self.opt: torch.optim.Optimizer | None = None
        self._log: dict | None = None
        self._sums: dict[int, dict[str, float]] = {}

    def check(self) -> None:
        p = self.params
        if p["encoding"] not in ENCODINGS:
            raise UsageError(f"method {self.name!r}: encoding must be one of {', '.join(ENCODINGS)}, "
                             f"got {p['encoding']!r}")
        if not float(p["lam"]) >= 0.0:
            raise UsageError(f"method {self.name!r}: lam must be >= 0, got {p['lam']}")
        if not 0.0 < float(p["tau"]) < 1.0:
            raise UsageError(f"method {self.name!r}: tau must be in (0, 1), got {p['tau']}")
        if not float(p["d_lr"]) > 0.0:
            raise UsageError(f"method {self.name!r}: d_lr must be > 0, got {p['d_lr']}")
        for key in ("width", "downsample", "d_steps"):
            if int(p[key]) < 1:
                raise UsageError(f"method {self.name!r}: {key} must be >= 1, got {p[key]}")

    # ------------------------------------------------------------ set-up
    def settings(self, ctx: Context) -> dict:
        return {"lam": float(self.params["lam"]), "encoding": self.params["encoding"],
                "tau": float(self.params["tau"]) if self.params["encoding"] == "scaling" else None,
                "width": int(self.params["width"]), "downsample": int(self.params["downsample"]),
                "d_steps": int(self.params["d_steps"]),
                "d_lr": float(self.params["d_lr"])}

    def _setup(self, in_channels: int, ctx: Context) -> None:
        """A fresh discriminator (seeded from the cell, without touching the global stream) and
        its optimiser; the record's entry."""
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(ctx._seed_for(f"{self.name}-discriminator"))
            self.disc = PairDiscriminator(in_channels, ctx.num_classes, self.params["encoding"],
                                          int(self.params["width"]), int(self.params["downsample"])).to(ctx.device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=float(self.params["d_lr"]), betas=(0.5, 0.999))
        self._sums = {}
        self._log = {**self.settings(ctx), "extra_forwards": 0, "epochs": []}
        ctx.note(self.record_key, self._log)

    def adapt_model(self, model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
        self._setup(int(model.in_channels), ctx)
        return LogitCache(model)

    # ------------------------------------------------------------ the hook
    def adversary(self, model: torch.nn.Module, batch, ctx: Context) -> torch.Tensor:
        x, y = batch
        if self.disc is None:
            self._setup(int(x.shape[1]), ctx)
        logits = model.take(x) if isinstance(model, LogitCache) else None
        if logits is None:  # not our wrapper (or another x): one more forward, counted
            logits = model(x)
            self._log["extra_forwards"] += 1
        ignore = ctx.ignore_index if ctx.ignore_index is not None else 255
        probs = logits.float().softmax(1)
        valid = valid_mask(y, ignore)
        fake = probs * valid
        enc = self.params["encoding"]
        if enc == "scaling":
            real = scaled_truth(y, probs.detach(), float(self.params["tau"]), ignore)
        else:
            real = one_hot(y, probs.shape[1], ignore)
        B = len(x)
        disc = self.disc
        # 1. the discriminator's step(s), on detached predictions
        pairs_x = torch.cat([x, x])
        pairs_map = encode(pairs_x, torch.cat([real, fake.detach()]), enc)
        target = torch.cat([torch.ones(B, device=x.device), torch.zeros(B, device=x.device)])
        for _ in range(int(self.params["d_steps"])):
            out = disc(pairs_x, pairs_map)
            loss_d = 2.0 * F.binary_cross_entropy_with_logits(out, target)  # bce(real, 1) + bce(fake, 0)
            if not torch.isfinite(loss_d):
                raise DivergenceError(f"{self.name}: discriminator loss became {float(loss_d)} at epoch {ctx.epoch}")
            self.opt.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt.step()
        # 2. the segmenter's term against the updated, frozen discriminator
        with frozen(disc):
            g = disc(x, encode(x, fake, enc))
        g_bce = F.binary_cross_entropy_with_logits(g, torch.ones_like(g))
        with torch.no_grad():
            self._record(ctx, d_loss=float(loss_d), d_real_acc=float((out[:B] > 0).float().mean()),
                         d_fake_acc=float((out[B:] < 0).float().mean()), g_bce=float(g_bce))
        return float(self.params["lam"]) * g_bce

    def _record(self, ctx: Context, **values: float) -> None:
        """Per-epoch means of ``values`` into the record's entry (updated in place)."""
        sums = self._sums.setdefault(int(ctx.epoch), {"n": 0})
        sums["n"] += 1
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        self._log["epochs"] = [{"epoch": e, **{k: round(v / s["n"], 5) for k, v in s.items() if k != "n"}}
                               for e, s in sorted(self._sums.items())]
