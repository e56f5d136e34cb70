"""Every non-GAN rebalancing method, registered on import.

Methods (name: what it does; parameters with defaults):

- ``erm``: no rebalancing, the reference row.
- ``ros``: random over-sampling to the largest class count (index sampling, exact).
- ``rus``: random under-sampling to the smallest class count (index sampling, exact).
- ``smote``: SMOTE on pixels up to the largest count (exact); k_neighbors=5.
- ``adasyn``: ADASYN on pixels (approximate counts); n_neighbors=5.
- ``borderline-smote``: Borderline-SMOTE on pixels (danger items only); k_neighbors=5,
  m_neighbors=10, kind=borderline-1.
- ``class-weighted``: CE weighted by 1/n_c, weights summing to C.
- ``cb-loss``: class-balanced loss (inverse effective number); beta=0.9999,
  loss=softmax|focal|sigmoid, gamma=1.0.
- ``focal``: softmax focal loss; gamma=2.0, alpha=-1 (off).
- ``ldam-drw``: LDAM margins on a cosine classifier + deferred class-balanced re-weighting;
  max_m=0.5, s=30, beta=0.9999, drw_start=0.8, drw=True.
- ``balanced-softmax``: CE on logits + log n_c (Ren et al. 2020).
- ``logit-adjustment``: CE on logits + tau log pi_c (mode=loss), or logits - tau log pi_c at
  evaluation (mode=posthoc, the ``adjust_logits`` hook); tau=1.
- ``cb-sampling``: class-balanced (q=0), square-root (q=0.5) or instance-balanced (q=1) batches.
- ``drs``: deferred re-sampling: erm's batches, class-balanced ones from drs_start=0.8.
- ``crt``, ``tau-norm``: decoupling (Kang et al. 2020): the classifier re-trained alone with
  class-balanced sampling from crt_start=0.9, or its rows scaled by 1/||w||^tau (tau=auto: chosen
  on a carved validation split) after erm's training.
- ``mixup-drw``, ``remix-drw`` (:mod:`.mixing`): mixup / Remix (kappa=3, tau=0.5) with alpha=1
  and DRW (beta=0.9999 from drw_start=0.8), as imbalanced-DL.
- ``augment``: standard augmentation for the dataset (affine / pad-crop-flip); policy=auto.
- ``random-erasing``: torchvision RandomErasing per image; p=0.5, scale_max=0.33, value=0.
- ``rfs`` (detection): LVIS repeat-factor sampling of images; t=0 (scaled to the set).
- ``seesaw`` (detection): Seesaw loss (mitigation p=0.8, compensation q=2.0) in the box-classification loss.
- ``copy-paste`` (detection, segmentation): Simple Copy-Paste of masked objects (detection) or
  rare-class regions (segmentation, :mod:`.region_paste`) between the images of a batch;
  paste_p=0.5, scale 0.5-1.5, flip=False, min_visible=0.05, rare_only=False.
- ``eqlv2`` (detection, Faster R-CNN): Equalization loss v2 (gradient-guided sigmoid re-weighting;
  gamma=12, mu=0.8, alpha=4).
- ``efl`` (detection, FCOS / RetinaNet): equalized focal loss (per-class focusing factor from
  gradient ratios; gamma=2, alpha=0.25, scale=8).
- ``dice``, ``generalized-dice``, ``tversky``, ``focal-tversky``, ``dice-ce``, ``dice-focal``
  (segmentation, :mod:`.region_losses`): MONAI region losses, void-masked, batch dice; tversky
  alpha=0.3 (FP) beta=0.7 (FN); focal-tversky the same with gamma=4/3; dice-ce / dice-focal
  lambdas 1, 1 (focal gamma=2); generalized-dice w_type=square.
- ``lovasz`` (segmentation): Lovász-softmax over the classes present in the batch.
- ``median-freq`` (segmentation): CE weighted by median_freq / freq_c (Eigen & Fergus 2015).

``erm``, ``ros``, ``focal``, ``cb-loss`` and ``random-erasing`` also declare the detection track, and
``erm``, ``ros``, ``focal``, ``class-weighted`` and ``copy-paste`` the segmentation track: their hooks
branch on ``ctx.track`` to the scene helpers :mod:`.scene_sampling` and :mod:`.box_losses`, and to the
pixel losses of :mod:`imbench.tasks.segmentation.losses`.

Shared helpers: :mod:`.class_weights` (inverse-frequency and class-balanced weights) and
:mod:`.resampling` (imbalanced-learn glue and the small-class rules of the SMOTE family).
Randomness comes only from ``ctx.rng`` / ``ctx.generator``; on-the-fly augmentations keep a
per-cell torch generator created at epoch 0.
"""
from . import (  # noqa: F401  (importing registers the methods)
    adasyn,
    augment,
    balanced_softmax,
    borderline_smote,
    cb_loss,
    cb_sampling,
    class_weighted,
    copy_paste,
    crt,
    drs,
    efl,
    eqlv2,
    erm,
    focal,
    ldam_drw,
    logit_adjustment,
    lovasz,
    median_freq,
    mixup_drw,
    random_erasing,
    region_losses,
    remix_drw,
    rfs,
    ros,
    rus,
    seesaw,
    smote,
    tau_norm,
)
