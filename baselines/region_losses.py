"""Region (overlap) losses of the segmentation track, from MONAI: dice, generalized-dice, tversky,
focal-tversky, dice-ce, dice-focal.

All take the softmax over the K classes, count background as a class (``include_background=True``)
and leave void out (:class:`~..tasks.segmentation.losses.VoidMasked`: probabilities and one-hot
target zeroed at void pixels, so the value is MONAI's loss on the labelled pixels alone).

``batch`` (default True): the intersections and sums are taken over the whole batch before the
ratio (MONAI ``batch=True``; nnU-Net's "batch dice"), then averaged over the classes. Per-image
overlap (``batch=False``) is noisy where a class is absent from an image (its term is ~1 for any
stray probability mass, ~0 otherwise) -- the common case for rare classes. Smoothing is MONAI's
(1e-5 on numerator and denominator).

Tversky weights: ``alpha`` multiplies false positives and ``beta`` false negatives in every method
here (Salehi et al.'s convention and MONAI's). Salehi et al. found alpha 0.3 / beta 0.7 best
(recall over precision); Abraham & Khan's focal Tversky names the false-negative weight alpha
(their alpha 0.7, beta 0.3 are ``beta=0.7, alpha=0.3`` here).
"""
from __future__ import annotations

from monai.losses import DiceLoss, GeneralizedDiceLoss, TverskyLoss

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.method import register_method
from ..tasks.segmentation.losses import Compound, FocalTversky, PixelCE, PixelFocal, VoidMasked


class _RegionLoss(Method):
    family = "baseline"
    tracks = ("segmentation",)

    def _nonnegative(self, *keys: str) -> None:
        for k in keys:
            if float(self.params[k]) < 0:
                raise UsageError(f"method {self.name!r}: {k} must be >= 0, got {self.params[k]}")

    def _some_positive(self, *keys: str) -> None:
        if not any(float(self.params[k]) > 0 for k in keys):
            raise UsageError(f"method {self.name!r}: one of {', '.join(keys)} must be > 0")

    def _dice(self, ctx: Context) -> VoidMasked:
        return VoidMasked(DiceLoss(batch=bool(self.params["batch"])), ctx.ignore_index)


@register_method
class Dice(_RegionLoss):
    """Soft Dice loss 1 − (2 Σ p g + ε) / (Σ p + Σ g + ε), per class, averaged over the K classes.

    Trained long on a set where most batches miss most classes it can collapse to predicting one
    class (README, "Budgets": fg-bg at x32). A class absent from a batch scores 1 − ε / (Σ p + ε),
    ~0 only while its total probability over the batch stays below ε (1e-5): the loss drives
    such classes' logits without bound until the softmax saturates and their gradient vanishes.
    The tables mark such a cell "(one class: k/n)"."""

    name = "dice"
    summary = "Soft Dice loss (MONAI DiceLoss; softmax, background included, batch dice)"
    reference = "Milletari, Navab & Ahmadi, V-Net, 3DV 2016"
    defaults = {"batch": True}

    def criterion(self, ctx: Context):
        return self._dice(ctx)


@register_method
class GeneralizedDice(_RegionLoss):
    """Generalised Dice: one ratio over the classes with class weights w_c = 1 / (Σ g_c)²
    (``w_type=square``, Sudre et al.; ``simple``: 1 / Σ g_c; ``uniform``: 1). A class absent from
    the batch takes the largest weight present (MONAI's rule, after NiftyNet)."""

    name = "generalized-dice"
    summary = "Generalised Dice loss: Dice with class weights 1/(class volume)^2 (MONAI GeneralizedDiceLoss)"
    reference = ("Sudre, Li, Vercauteren, Ourselin & Cardoso, Generalised Dice overlap as a deep learning loss "
                 "function for highly unbalanced segmentations, DLMIA 2017")
    defaults = {"w_type": "square", "batch": True}

    def check(self) -> None:
        if self.params["w_type"] not in ("square", "simple", "uniform"):
            raise UsageError(f"method 'generalized-dice': w_type must be square, simple or uniform, "
                             f"got {self.params['w_type']!r}")

    def criterion(self, ctx: Context):
        return VoidMasked(GeneralizedDiceLoss(w_type=self.params["w_type"], batch=bool(self.params["batch"])),
                          ctx.ignore_index)


@register_method
class Tversky(_RegionLoss):
    """Tversky loss 1 − TP / (TP + alpha·FP + beta·FN) per class, averaged over the classes
    (alpha = beta = 0.5 is the Dice loss)."""

    name = "tversky"
    summary = "Tversky loss: Dice with false positives / negatives weighted alpha / beta (MONAI TverskyLoss)"
    reference = ("Salehi, Erdogmus & Gholipour, Tversky loss function for image segmentation using 3D fully "
                 "convolutional deep networks, MLMI 2017")
    defaults = {"alpha": 0.3, "beta": 0.7, "batch": True}

    def check(self) -> None:
        self._nonnegative("alpha", "beta")
        self._some_positive("alpha", "beta")

    def criterion(self, ctx: Context):
        p = self.params
        return VoidMasked(TverskyLoss(alpha=float(p["alpha"]), beta=float(p["beta"]), batch=bool(p["batch"])),
                          ctx.ignore_index)


@register_method
class FocalTverskyMethod(_RegionLoss):
    """Focal Tversky loss: mean over classes of (1 − TI_c)^(1/gamma), TI_c MONAI's Tversky index with
    alpha on false positives, beta on false negatives (the paper's alpha 0.7 on false negatives is
    ``beta=0.7``); gamma 4/3 as the paper's best. The paper sums over classes; the mean is used
    (a constant factor K)."""

    name = "focal-tversky"
    summary = "Focal Tversky loss: (1 - Tversky index)^(1/gamma) per class (built on MONAI TverskyLoss)"
    reference = ("Abraham & Khan, A novel focal Tversky loss function with improved attention U-Net for lesion "
                 "segmentation, ISBI 2019")
    defaults = {"alpha": 0.3, "beta": 0.7, "gamma": 4.0 / 3.0, "batch": True}

    def check(self) -> None:
        self._nonnegative("alpha", "beta")
        self._some_positive("alpha", "beta")
        if float(self.params["gamma"]) <= 0:
            raise UsageError(f"method 'focal-tversky': gamma must be > 0, got {self.params['gamma']}")

    def criterion(self, ctx: Context):
        p = self.params
        return VoidMasked(FocalTversky(float(p["alpha"]), float(p["beta"]), float(p["gamma"]), bool(p["batch"])),
                          ctx.ignore_index)


@register_method
class DiceCE(_RegionLoss):
    """lambda_dice · Dice + lambda_ce · cross-entropy (mean over labelled pixels): MONAI's
    ``DiceCELoss`` (whose CE is PyTorch's), composed here so the CE leaves void out."""

    name = "dice-ce"
    summary = "Dice + cross-entropy (MONAI DiceLoss + PyTorch CE, as MONAI DiceCELoss)"
    reference = "Ma et al., Loss odyssey in medical image segmentation, Medical Image Analysis 2021"
    defaults = {"lambda_dice": 1.0, "lambda_ce": 1.0, "batch": True}

    def check(self) -> None:
        self._nonnegative("lambda_dice", "lambda_ce")
        self._some_positive("lambda_dice", "lambda_ce")

    def criterion(self, ctx: Context):
        p = self.params
        return Compound([(p["lambda_dice"], self._dice(ctx)), (p["lambda_ce"], PixelCE(ctx.ignore_index))])


@register_method
class DiceFocal(_RegionLoss):
    """lambda_dice · Dice + lambda_focal · softmax focal loss (MONAI ``FocalLoss``, ``use_softmax``,
    mean over labelled pixels: the ``focal`` method's term). MONAI's ``DiceFocalLoss`` is not used
    as it stands: its focal term is the sigmoid (multi-label) form averaged over pixels × classes,
    where Ma et al. use the softmax form over pixels."""

    name = "dice-focal"
    summary = "Dice + softmax focal loss (MONAI DiceLoss + FocalLoss)"
    reference = "Ma et al., Loss odyssey in medical image segmentation, Medical Image Analysis 2021"
    defaults = {"lambda_dice": 1.0, "lambda_focal": 1.0, "gamma": 2.0, "batch": True}

    def check(self) -> None:
        self._nonnegative("lambda_dice", "lambda_focal", "gamma")
        self._some_positive("lambda_dice", "lambda_focal")

    def criterion(self, ctx: Context):
        p = self.params
        focal = PixelFocal(ctx.ignore_index, gamma=float(p["gamma"]))
        return Compound([(p["lambda_dice"], self._dice(ctx)), (p["lambda_focal"], focal)])
