"""The segmentation loss methods: void masking around MONAI's losses, Lovász-softmax, median-frequency
weights, class-weighted and focal on the pixel track (imbench.tasks.segmentation.losses and the
baselines that use it)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss, GeneralizedDiceLoss, TverskyLoss
from monai.losses import FocalLoss as MonaiFocal

from imbench.baselines import class_weighted, focal, lovasz, median_freq, region_losses  # noqa: F401 (registers)
from imbench.baselines.class_weights import inverse_frequency_weights
from imbench.baselines.focal import FocalLoss as ClassificationFocal
from imbench.benchmarks.contract import Context
from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.contract.method import METHODS
from imbench.data_recipes.segset import SegSet
from imbench.tasks.segmentation.losses import lovasz_softmax, median_frequency_weights
from imbench.tasks.segmentation.models import build_segmenter
from imbench.tasks.segmentation.train import fit

VOID = 255
K = 4
REGION = ["dice", "generalized-dice", "tversky", "focal-tversky", "dice-ce", "dice-focal"]
METHOD_NAMES = REGION + ["lovasz", "median-freq", "class-weighted", "focal"]


def toy_set(n=4, size=8, seed=0) -> SegSet:
    """``n`` grey images, K classes (class 3 rare), a void border on some rows."""
    g = torch.Generator().manual_seed(seed)
    images, masks = [], []
    for i in range(n):
        m = torch.randint(0, K - 1, (size, size), generator=g)
        m[: size // 2, : size // 2] = 0
        if i % 2 == 0:
            m[-2:, -2:] = K - 1
        m[0, :] = VOID
        images.append(torch.randint(0, 256, (1, size, size), generator=g, dtype=torch.uint8))
        masks.append(m)
    return SegSet(images, masks, [f"c{k}" for k in range(K)], ignore_index=VOID)


def make_ctx(train: SegSet, **budget) -> Context:
    return Context(track="segmentation", class_names=list(train.class_names), instance_counts=train.pixel_counts(),
                   image_counts=train.image_counts(), minority=[K - 1], seed=0, ignore_index=VOID,
                   budget={"epochs": 1, "batch_size": 2, "optimizer": "adam", "lr": 1e-3, **budget})


def criterion(name: str, train: SegSet | None = None, **params):
    train = train if train is not None else toy_set()
    method, ctx = METHODS.get(name)(**params), make_ctx(train)
    method.prepare(train, ctx)
    return method.criterion(ctx), ctx


def batch(B=2, H=5, W=6, void=0.25, seed=1):
    """Random logits (requiring grad) and labels with a fraction ``void`` of void pixels (every class present)."""
    g = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(B, K, H, W, generator=g)).requires_grad_()
    labels = torch.randint(0, K, (B, H, W), generator=g)
    labels[torch.rand(B, H, W, generator=g) < void] = VOID
    labels.view(-1)[:K] = torch.arange(K)
    return logits, labels


def labelled_only(logits, labels):
    """The labelled pixels of the batch as one image: logits (1, K, N), labels (1, 1, N)."""
    valid = labels != VOID
    return logits.movedim(1, -1)[valid].T[None], labels[valid][None, None]


def monai_reference(name: str):
    """MONAI's own loss for ``name`` on ``(logits, labels (B, 1, ...))`` with the methods' defaults."""
    common = {"softmax": True, "to_onehot_y": True, "batch": True}
    if name == "dice":
        return DiceLoss(**common)
    if name == "generalized-dice":
        return GeneralizedDiceLoss(**common)
    if name == "tversky":
        return TverskyLoss(alpha=0.3, beta=0.7, **common)
    if name == "focal-tversky":
        tv = TverskyLoss(alpha=0.3, beta=0.7, reduction="none", **common)
        return lambda x, y: tv(x, y).clamp_min(1e-12).pow(0.75).mean()
    if name == "dice-ce":
        return DiceCELoss(**common)
    if name == "dice-focal":
        dice, fl = DiceLoss(**common), ClassificationFocal(gamma=2.0)
        return lambda x, y: dice(x, y) + fl(x.movedim(1, -1).reshape(-1, K), y.reshape(-1))
    raise KeyError(name)


# ------------------------------------------------------------------ equal to MONAI on the labelled pixels


@pytest.mark.parametrize("name", REGION)
def test_region_loss_is_monai_loss_on_the_labelled_pixels(name):
    loss, _ = criterion(name)
    ref = monai_reference(name)
    logits, labels = batch(void=0.0)
    assert torch.allclose(loss(logits, labels), ref(logits, labels[:, None]), atol=1e-6)  # no void: MONAI's value
    logits, labels = batch(void=0.3, seed=2)
    got, want = loss(logits, labels), ref(*labelled_only(logits, labels))
    assert torch.allclose(got, want, atol=1e-6), (got, want)


def test_per_image_dice_is_monai_per_image_on_the_labelled_pixels():
    loss, _ = criterion("dice", batch=False)
    logits, labels = batch(B=3, void=0.3, seed=3)
    per_image = [DiceLoss(softmax=True, to_onehot_y=True)(*labelled_only(logits[i:i + 1], labels[i:i + 1]))
                 for i in range(3)]
    assert torch.allclose(loss(logits, labels), torch.stack(per_image).mean(), atol=1e-6)


@pytest.mark.parametrize("name", REGION)
@pytest.mark.parametrize("per_image", [False, True])
def test_an_all_void_image_changes_no_region_loss(name, per_image):
    """An image with no labelled pixel has nothing to score: per image it must not add a 0 term
    that dilutes the mean (batch dice is unchanged by it anyway)."""
    loss, _ = criterion(name, batch=not per_image)
    logits, labels = batch(B=2, void=0.3, seed=5)
    extra = labels[:1].clone().fill_(VOID)
    alone = loss(logits, labels)
    with_void = loss(torch.cat([logits, 5 * torch.randn_like(logits[:1])]), torch.cat([labels, extra]))
    assert torch.allclose(alone, with_void, atol=1e-6), (alone, with_void)


def test_masking_agrees_with_monai_ignore_index_where_monai_has_one():
    logits, labels = batch(void=0.3, seed=4)
    for name, own in [("dice", DiceLoss), ("tversky", TverskyLoss)]:
        kw = {"alpha": 0.3, "beta": 0.7} if name == "tversky" else {}
        ref = own(softmax=True, to_onehot_y=True, batch=True, ignore_index=VOID, **kw)
        assert torch.allclose(criterion(name)[0](logits, labels), ref(logits, labels[:, None]), atol=1e-6)


def test_tversky_at_one_half_is_dice():
    logits, labels = batch(void=0.2, seed=5)
    tv = criterion("tversky", alpha=0.5, beta=0.5)[0](logits, labels)
    assert torch.allclose(tv, criterion("dice")[0](logits, labels), atol=1e-6)


def test_tversky_beta_weighs_false_negatives():
    """Two classes; the rare class 1 under-predicted (p = 0.3 on its 2 pixels, ~0 elsewhere): its
    false negatives dominate, so the FN-heavy setting (beta 0.7) costs more than the FP-heavy one."""
    labels = torch.zeros(1, 4, 4, dtype=torch.int64)
    labels[0, 0, :2] = 1
    logits = torch.stack([torch.full((4, 4), 10.0), torch.full((4, 4), -10.0)])[None]
    logits[0, :, 0, :2] = torch.tensor([0.7, 0.3]).log()[:, None]
    for name in ("tversky", "focal-tversky"):
        fn_heavy = criterion(name, alpha=0.3, beta=0.7)[0](logits, labels)
        fp_heavy = criterion(name, alpha=0.7, beta=0.3)[0](logits, labels)
        assert fn_heavy > fp_heavy + 0.05, name
    # class 1: TP 0.6, FN 1.4, FP ~0; class 0: TP ~14, FP 1.4: (1 - TI_c)^(3/4) averaged
    ti = torch.tensor([14 / (14 + 0.3 * 1.4), 0.6 / (0.6 + 0.7 * 1.4)])
    got = criterion("focal-tversky")[0](logits, labels)
    assert got.item() == pytest.approx((1 - ti).pow(0.75).mean().item(), abs=1e-3)


# ------------------------------------------------------------------ void changes nothing; all-void; gradients


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_void_pixels_with_any_logits_change_nothing_and_get_no_gradient(name):
    loss, _ = criterion(name)
    logits, labels = batch(void=0.2, seed=6)
    base = loss(logits, labels)
    g = torch.Generator().manual_seed(7)
    wide = torch.cat([logits.detach(), 30 * torch.randn(2, K, 5, 3, generator=g)], -1).requires_grad_()
    wide_labels = torch.cat([labels, torch.full((2, 5, 3), VOID)], -1)
    out = loss(wide, wide_labels)
    assert torch.allclose(out, base, atol=1e-6), (out, base)
    out.backward()
    assert torch.isfinite(wide.grad).all()
    assert (wide.grad.movedim(1, -1)[wide_labels == VOID] == 0).all()
    assert wide.grad.abs().sum() > 0


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_all_void_batch_gives_a_finite_zero(name):
    loss, _ = criterion(name)
    logits = torch.randn(2, K, 3, 3, requires_grad=True)
    out = loss(logits, torch.full((2, 3, 3), VOID))
    assert out.item() == 0.0
    out.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()


@pytest.mark.parametrize("name", REGION[:4] + ["lovasz"])
def test_perfect_prediction_costs_nothing(name):
    loss, _ = criterion(name)
    _, labels = batch(void=0.2, seed=8)
    logits = 60.0 * F.one_hot(torch.where(labels == VOID, 0, labels), K).movedim(-1, 1).float()
    assert abs(loss(logits, labels).item()) < 1e-5


# ------------------------------------------------------------------ Lovász-softmax


def jaccard_loss(S: set[int], fg: set[int]) -> float:
    """Δ_J(S) = |S| / |fg ∪ S|: the Jaccard loss when the pixels S are the mispredicted ones."""
    return len(S) / len(fg | S) if S else 0.0


def lovasz_by_threshold(errors: list[float], fg: set[int]) -> float:
    """The Lovász extension from its definition as an integral: ∫_0^1 Δ_J({i : m_i >= t}) dt."""
    levels = sorted(set(errors) | {0.0}, reverse=True)
    return sum((hi - lo) * jaccard_loss({i for i, m in enumerate(errors) if m >= hi}, fg)
               for hi, lo in itertools.pairwise(levels))


def lovasz_by_permutations(errors: list[float], fg: set[int]) -> float:
    """Δ_J is submodular, so its Lovász extension is the largest greedy sum over every order of the pixels."""
    best = -math.inf
    for order in itertools.permutations(range(len(errors))):
        total, S = 0.0, set()
        for i in order:
            before = jaccard_loss(S, fg)
            S = S | {i}
            total += errors[i] * (jaccard_loss(S, fg) - before)
        best = max(best, total)
    return best


def test_lovasz_equals_the_lovasz_extension_from_its_definition():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(1, K, 1, 8, generator=g)
    labels = torch.tensor([[[0, 2, VOID, 2, 0, 0, VOID, 2]]])  # classes 1 and 3 absent: not counted
    valid = (labels != VOID)[0, 0]
    probs = torch.softmax(logits, 1)[0, :, 0][:, valid].double()  # (K, 6)
    y = labels[0, 0][valid]
    per_class_def, per_class_perm = [], []
    for c in (0, 2):
        errors = (F.one_hot(y, K)[:, c] - probs[c]).abs().tolist()
        fg = set(torch.nonzero(y == c).reshape(-1).tolist())
        per_class_def.append(lovasz_by_threshold(errors, fg))
        per_class_perm.append(lovasz_by_permutations(errors, fg))
    assert per_class_def == pytest.approx(per_class_perm, abs=1e-9)
    got = lovasz_softmax(logits, labels, VOID).item()
    assert got == pytest.approx(sum(per_class_def) / 2, abs=1e-6)


def test_lovasz_of_a_perfect_prediction_is_zero_and_grows_with_error():
    labels = torch.tensor([[[0, 1, 1, 3]]])
    perfect = 200.0 * F.one_hot(labels, K).movedim(-1, 1).float()
    assert lovasz_softmax(perfect, labels, VOID).item() == 0.0
    wrong = 80.0 * F.one_hot(torch.tensor([[[0, 1, 3, 3]]]), K).movedim(-1, 1).float()
    # one pixel of class 1 called 3: class 1 loses 1/2 of its IoU, class 3 1/2, class 0 nothing
    assert lovasz_softmax(wrong, labels, VOID).item() == pytest.approx((0 + 0.5 + 0.5) / 3, abs=1e-6)


# ------------------------------------------------------------------ median frequency, class-weighted, focal


def median_toy() -> SegSet:
    masks = [torch.tensor([[0, 0, 0], [0, 0, 1]]),  # 6 labelled: five 0, one 1
             torch.tensor([[0, 0, 2], [VOID, 2, 2]]),  # 5 labelled: two 0, three 2
             torch.tensor([[1, 1, VOID], [VOID, VOID, VOID]])]  # 2 labelled: two 1
    images = [torch.zeros(1, 2, 3, dtype=torch.uint8) for _ in masks]
    return SegSet(images, masks, ["a", "b", "c", "absent"], ignore_index=VOID)


def test_median_frequency_weights_by_hand():
    # freq: class 0 = 7 / (6 + 5), class 1 = 3 / (6 + 2), class 2 = 3 / 5; median 3/5; class 3 absent
    want = [0.6 / (7 / 11), 0.6 / (3 / 8), 1.0, 0.0]
    train = median_toy()
    assert median_frequency_weights(train.masks, 4, VOID).tolist() == pytest.approx(want, rel=1e-6)
    loss, ctx = criterion("median-freq", train=train)
    assert ctx.record["class_weights"] == pytest.approx(want, abs=1e-6)
    logits, labels = torch.randn(2, 4, 2, 3), torch.stack(train.masks[:2])
    ref = F.cross_entropy(logits, labels, weight=torch.tensor(want, dtype=torch.float32), ignore_index=VOID)
    assert torch.allclose(loss(logits, labels), ref)


def test_median_freq_needs_prepare():
    with pytest.raises(RuntimeError, match="prepare"):
        METHODS.get("median-freq")().criterion(make_ctx(toy_set()))


def test_class_weighted_is_weighted_cross_entropy_with_ignore_index():
    train = toy_set()
    loss, ctx = criterion("class-weighted", train=train)
    w = inverse_frequency_weights(train.pixel_counts())
    assert ctx.record["class_weights"] == pytest.approx(w.tolist(), abs=1e-6)
    logits, labels = batch(void=0.3, seed=10)
    assert torch.allclose(loss(logits, labels), F.cross_entropy(logits, labels, weight=w, ignore_index=VOID))


@pytest.mark.parametrize("gamma,alpha", [(2.0, -1.0), (2.0, 0.25), (0.5, 0.75)])
def test_focal_is_the_classification_focal_loss_on_the_labelled_pixels(gamma, alpha):
    loss, _ = criterion("focal", gamma=gamma, alpha=alpha)
    logits, labels = batch(void=0.3, seed=11)
    flat, flat_labels = labelled_only(logits, labels)
    alpha_t = None
    if alpha >= 0:
        alpha_t = torch.full((K,), 1 - alpha)
        alpha_t[K - 1] = alpha
    ref = ClassificationFocal(gamma, alpha_t)(flat[0].T, flat_labels.reshape(-1))
    assert torch.allclose(loss(logits, labels), ref, atol=1e-6)
    mon = MonaiFocal(use_softmax=True, to_onehot_y=True, gamma=gamma, ignore_index=VOID,
                     alpha=None if alpha_t is None else alpha_t.tolist())
    assert torch.allclose(loss(logits, labels), mon(logits, labels[:, None]), atol=1e-6)


def test_dice_focal_and_dice_ce_weights():
    logits, labels = batch(void=0.2, seed=12)
    dice = criterion("dice")[0](logits, labels)
    ce = F.cross_entropy(logits, labels, ignore_index=VOID)
    fl = criterion("focal")[0](logits, labels)
    got = criterion("dice-ce", lambda_dice=0.5, lambda_ce=2.0)[0](logits, labels)
    assert torch.allclose(got, 0.5 * dice + 2.0 * ce, atol=1e-6)
    got = criterion("dice-focal", lambda_dice=2.0, lambda_focal=0.0)[0](logits, labels)
    assert torch.allclose(got, 2.0 * dice, atol=1e-6)
    assert torch.allclose(criterion("dice-focal")[0](logits, labels), dice + fl, atol=1e-6)


@pytest.mark.parametrize("name,params", [("tversky", {"alpha": -0.1}), ("focal-tversky", {"gamma": 0.0}),
                                         ("dice-ce", {"lambda_dice": 0.0, "lambda_ce": 0.0}),
                                         ("generalized-dice", {"w_type": "cubic"}),
                                         ("dice-focal", {"gamma": -1.0})])
def test_bad_parameters_are_usage_errors(name, params):
    with pytest.raises(UsageError, match=name):
        METHODS.get(name)(**params)


# ------------------------------------------------------------------ one smoke run each through the track


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_trains_a_segmenter(name):
    assert METHODS.get(name).supports("segmentation")
    torch.manual_seed(0)
    train = toy_set(n=4)
    ctx = make_ctx(train)
    method = METHODS.get(name)()
    model = build_segmenter("unet", num_classes=K, in_channels=1, mean=[0.5], std=[0.25])
    history, training = fit(model, method.prepare(train, ctx), method, ctx)
    assert training["loss"] == "method" and training["train_steps"] == 2
    assert len(history["loss"]) == 1 and math.isfinite(history["loss"][0]) and history["loss"][0] >= 0
