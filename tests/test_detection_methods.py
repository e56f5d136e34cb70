"""Detection models' loss slot, and the baselines' detection hooks, against their references."""
from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import sigmoid_focal_loss

from imbench.baselines.box_losses import sigmoid_focal, softmax_focal
from imbench.baselines.scene_sampling import lvis_threshold, repeat_factors
from imbench.benchmarks.contract import RepeatFactors
from imbench.benchmarks.plugins import method_class
from imbench.tasks.detection.models import build_detector
from imbench.tasks.schedule import epoch_orders
from imbench.testing import tiny_scene_context, tiny_sceneset


def _batch(train, n=4):
    images = [train.images[i].float() / 255.0 for i in range(n)]
    targets = [{"boxes": train.targets[i]["boxes"].as_subclass(torch.Tensor), "labels": train.targets[i]["labels"]}
               for i in range(n)]
    return images, targets


def _losses(name, cls_loss, seed=0):
    train = tiny_sceneset()
    torch.manual_seed(0)
    det = build_detector(name, num_classes=3, in_channels=1, image_size=32, mean=[0.2], std=[0.3])
    det.cls_loss = cls_loss
    det.train()
    torch.manual_seed(seed)
    return det, det(*_batch(train))


@pytest.mark.parametrize("name", ["fcos", "retinanet"])
def test_sigmoid_heads_own_loss_equals_focal_alpha_025(name):
    """focal:alpha=0.25 (gamma 2) goes through the replaceable slot and gives exactly the loss
    torchvision's head computes itself (erm)."""
    _, own = _losses(name, None)
    _, slot = _losses(name, partial(sigmoid_focal, alpha=0.25, gamma=2.0))
    for key in own:
        assert torch.allclose(own[key], slot[key], rtol=1e-5, atol=1e-6), key


def test_faster_rcnn_roi_head_equals_torchvision_roi_heads():
    det, ours = _losses("faster-rcnn", None, seed=3)
    heads = det.model.roi_heads
    stock = RoIHeads(heads.box_roi_pool, heads.box_head, heads.box_predictor, 0.5, 0.5, 64, 0.25, None,
                     0.05, 0.5, 100)
    det.model.roi_heads = stock
    torch.manual_seed(3)
    theirs = det(*_batch(tiny_sceneset()))
    for key in theirs:
        assert torch.allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6), key


def test_faster_rcnn_eval_path_equals_torchvision_roi_heads():
    det, _ = _losses("faster-rcnn", None)
    det.eval()
    images, _ = _batch(tiny_sceneset())
    with torch.no_grad():
        ours = det(images)
        heads = det.model.roi_heads
        det.model.roi_heads = RoIHeads(heads.box_roi_pool, heads.box_head, heads.box_predictor, 0.5, 0.5, 64, 0.25,
                                       None, 0.05, 0.5, 100)
        det.model.roi_heads.eval()
        theirs = det(images)
    for a, b in zip(ours, theirs):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(a[key], b[key]), key


def test_faster_rcnn_loss_slot_receives_background_as_minus_one():
    seen = {}

    def spy(logits, classes):
        seen["shape"], seen["classes"] = logits.shape, classes.clone()
        return F.cross_entropy(logits, classes + 1, reduction="sum")

    _, with_spy = _losses("faster-rcnn", spy, seed=1)
    _, own = _losses("faster-rcnn", None, seed=1)
    assert seen["shape"][1] == 4 and seen["classes"].min() == -1 and seen["classes"].max() <= 2
    assert torch.allclose(with_spy["loss_classifier"], own["loss_classifier"], rtol=1e-5)


def test_box_losses_match_references():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 3, generator=g)
    classes = torch.randint(-1, 3, (20,), generator=g)
    onehot = torch.zeros(20, 3)
    onehot[classes >= 0, classes[classes >= 0]] = 1
    ref = sigmoid_focal_loss(logits, onehot, alpha=-1, gamma=0, reduction="sum")
    assert torch.allclose(sigmoid_focal(logits, classes, alpha=-1, gamma=0.0), ref)
    assert torch.allclose(ref, F.binary_cross_entropy_with_logits(logits, onehot, reduction="sum"))
    w = torch.tensor([2.0, 0.5, 1.0])
    by_hand = (sigmoid_focal_loss(logits, onehot, alpha=0.25, gamma=2, reduction="none")
               * torch.where(classes >= 0, w[classes.clamp(min=0)], torch.ones(20))[:, None]).sum()
    assert torch.allclose(sigmoid_focal(logits, classes, alpha=0.25, gamma=2.0, weights=w), by_hand)
    soft = torch.randn(20, 4, generator=g)
    assert torch.allclose(softmax_focal(soft, classes, gamma=0.0), F.cross_entropy(soft, classes + 1, reduction="sum"))
    p_t = F.softmax(soft, 1).gather(1, (classes + 1)[:, None])[:, 0]
    assert torch.allclose(softmax_focal(soft, classes, gamma=2.0), (-(1 - p_t) ** 2 * p_t.log()).sum(), rtol=1e-5)


def test_ros_duplicates_images_until_rare_classes_catch_up():
    train = tiny_sceneset(counts=(12, 4, 2))
    ctx = tiny_scene_context(train)
    out = method_class("ros")().prepare(train, ctx)
    counts = out.instance_counts()
    assert counts[1] >= 12 and counts[2] >= 12
    assert not out.synthetic.any() and len(out) > len(train)
    assert all(torch.equal(a, b) for a, b in zip(out.images[: len(train)], train.images))
    for img, copy_id in zip(out.images[len(train):], out.ids[len(train):]):
        original = train.ids.index(copy_id.removesuffix("-copy"))
        assert torch.equal(img, train.images[original])
    assert ctx.record["ros_counts"]["reached"] == counts


def test_repeat_factors_follow_lvis_formula():
    train = tiny_sceneset(counts=(12, 4, 2))
    n = len(train)
    f = [c / n for c in train.image_counts()]
    t = 0.5
    r = repeat_factors(train, t)
    for i, target in enumerate(train.targets):
        classes = target["labels"].unique().tolist()
        expected = max([max(1.0, math.sqrt(t / f[c])) for c in classes], default=1.0)
        assert math.isclose(float(r[i]), expected, rel_tol=1e-12)
    # t scaled to the set: the image frequency where the frequent group starts, so exactly the
    # rare and common classes get r > 1
    from imbench.benchmarks.contract import frequency_groups

    auto = lvis_threshold(train)
    groups = frequency_groups(train.image_counts())
    assert auto == min(train.image_counts()[c] for c in groups["frequent"]) / n
    r_class = [max(1.0, math.sqrt(auto / fc)) for fc in f]
    assert [c for c in range(3) if r_class[c] > 1] == sorted(groups["rare"] + groups["common"])


def test_repeat_factor_draws_round_stochastically():
    plan = RepeatFactors(torch.tensor([1.0, 2.5, 0.0, 1.2]))
    g = torch.Generator().manual_seed(0)
    draws = [plan.draw(g) for _ in range(4000)]
    mean = torch.stack([torch.bincount(d, minlength=4) for d in draws]).double().mean(0)
    assert torch.allclose(mean, torch.tensor([1.0, 2.5, 0.0, 1.2], dtype=torch.float64), atol=0.05)
    assert all((torch.bincount(d, minlength=4)[0] == 1) for d in draws[:50])
    orders = epoch_orders(4, 6, plan, torch.Generator().manual_seed(1))
    first, second = next(orders), next(orders)
    assert len(first) == len(second) == 6 and 2 not in first.tolist()
    # per_epoch None (budget unit epochs): an epoch is one whole draw, permuted
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    whole = next(epoch_orders(4, None, plan, g1))
    assert sorted(whole.tolist()) == plan.draw(g2).tolist()


def test_cb_loss_weights_items_by_instance_counts():
    train = tiny_sceneset(counts=(12, 4, 2))
    ctx = tiny_scene_context(train)
    fn = method_class("cb-loss")(beta=0.9).criterion(ctx)
    w = torch.tensor(ctx.record["class_weights"])
    beta, n = 0.9, torch.tensor(train.instance_counts(), dtype=torch.float64)
    ref = (1 - beta) / (1 - beta ** n)
    assert torch.allclose(w.double(), ref / ref.sum() * 3, rtol=1e-5)
    logits, classes = torch.randn(10, 3), torch.tensor([0, 1, 2, -1, -1, 0, 2, 1, -1, 0])
    assert torch.allclose(fn(logits, classes), sigmoid_focal(logits, classes, alpha=0.25, gamma=2.0, weights=w))
