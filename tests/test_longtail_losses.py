"""Seesaw and EQLv2 on the detection track: each equals its paper / reference formula, computed
here independently item by item, over two calls in a row (so the accumulated counts / gradients
are used), reduces to plain CE / BCE where it should, and passes the contract."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imbench.baselines.eqlv2 import EQLv2, EQLv2Loss
from imbench.baselines.seesaw import Seesaw, SeesawLoss
from imbench.benchmarks.contract.errors import UsageError
from imbench.testing import check_method, run_smoke_cell, tiny_scene_context, tiny_sceneset

K = 3
EPS = 1e-2


def _batches(head: str):
    """Two hand-made batches: (logits, classes), classes -1 = background. The first has an item
    whose own class scores far below the others (compensation and the eps clamp)."""
    cols = K + 1 if head == "softmax" else K
    g = torch.Generator().manual_seed(7)
    c1 = torch.tensor([0, 0, 0, 1, -1, 2, 0])
    c2 = torch.tensor([0, 1, 2, -1, 0, 1])
    z1 = torch.randn(len(c1), cols, generator=g) * 1.5
    z2 = torch.randn(len(c2), cols, generator=g) * 1.5
    off = 1 if head == "softmax" else 0
    z1[6] = 2.0
    z1[6, off + 0] = -5.0  # class 0 item, its own score tiny
    return (z1, c1), (z2, c2)


# ------------------------------------------------------------------------------------ seesaw

def seesaw_by_hand(z: torch.Tensor, classes: torch.Tensor, counts: list[float], p: float, q: float,
                   head: str) -> float:
    """The seesaw loss, item by item (counts = the cumulative counts including this batch)."""
    n = [max(c, 1.0) for c in counts]
    total = 0.0
    for row, c in zip(z.double().tolist(), classes.tolist()):
        obj = row[1:] if head == "softmax" else row
        if head == "softmax":
            e = [math.exp(v) for v in obj]
            scores = [v / sum(e) for v in e]
        else:
            scores = [1 / (1 + math.exp(-v)) for v in obj]
        if c < 0:
            if head == "softmax":
                total += -(row[0] - math.log(sum(math.exp(v) for v in row)))
            else:
                total += sum(-math.log(1 - s) for s in scores)
            continue
        S = []
        for j in range(K):
            m = (n[j] / n[c]) ** p if n[j] < n[c] else 1.0
            r = scores[j] / max(scores[c], EPS)
            S.append(m * (r ** q if r > 1 else 1.0))
        if head == "softmax":
            denom = math.exp(row[0]) + sum((1.0 if j == c else S[j]) * math.exp(obj[j]) for j in range(K))
            total += -(obj[c] - math.log(denom))
        else:
            total += -math.log(scores[c]) + sum(S[j] * -math.log(1 - scores[j]) for j in range(K) if j != c)
    return total


@pytest.mark.parametrize("head", ["softmax"])
def test_seesaw_equals_paper_formula_with_accumulated_counts(head):
    (z1, c1), (z2, c2) = _batches(head)
    loss = SeesawLoss(K, head, p=0.8, q=2.0)
    first, second = loss(z1, c1), loss(z2, c2)
    n1 = [3.0 + 1.0, 1.0, 1.0]  # the batch's own items count (mmdetection adds them first)
    n2 = [n1[0] + 2, n1[1] + 2, n1[2] + 1]
    assert loss.cum_samples.tolist() == n2
    assert math.isclose(float(first), seesaw_by_hand(z1, c1, n1, 0.8, 2.0, head), rel_tol=1e-5)
    assert math.isclose(float(second), seesaw_by_hand(z2, c2, n2, 0.8, 2.0, head), rel_tol=1e-5)
    # the second call really used the first call's counts: a fresh module gives another loss
    fresh = float(SeesawLoss(K, head)(z2, c2))
    assert math.isclose(fresh, seesaw_by_hand(z2, c2, [2.0, 2.0, 1.0], 0.8, 2.0, head), rel_tol=1e-5)
    assert abs(fresh - float(second)) > 1e-3


def test_seesaw_softmax_gradient_is_the_papers():
    """∂L/∂z_j = S_ij e^{z_j} / D for j ≠ i, e^{z_i} / D − 1 for the true class, e^{z_bg} / D for the
    background (D the seesaw denominator): the factors are constants, as in the paper."""
    (z1, c1), _ = _batches("softmax")
    z = z1.double().requires_grad_(True)
    loss = SeesawLoss(K, "softmax")
    loss(z, c1).backward()
    counts = [4.0, 1.0, 1.0]
    for m, (row, c) in enumerate(zip(z1.double().tolist(), c1.tolist())):
        e = [math.exp(v) for v in row]
        if c < 0:
            expected = [v / sum(e) for v in e]
            expected[0] -= 1
        else:
            obj = [v / sum(e[1:]) for v in e[1:]]
            w = [1.0] + [((counts[j] / counts[c]) ** 0.8 if counts[j] < counts[c] else 1.0)
                         * max(1.0, (obj[j] / max(obj[c], EPS))) ** 2 if j != c else 1.0 for j in range(K)]
            d = sum(wi * ei for wi, ei in zip(w, e))
            expected = [wi * ei / d for wi, ei in zip(w, e)]
            expected[c + 1] -= 1
        assert torch.allclose(z.grad[m], torch.tensor(expected, dtype=torch.float64), atol=1e-10), m


def test_seesaw_gradient_stays_a_softmax_gradient_where_the_sigmoid_form_reached_1240():
    """The issue's case: an item of class 0 whose own score is about 0.01 while a confused class
    scores about 0.5. The compensation factor is then (0.5/0.01)^2 = 2500; inside the logits (as
    mmdetection) every gradient stays a softmax difference in [-1, 1] (the removed sigmoid form,
    which scaled the BCE term by it, gave 1240 on the confused logit). Random batches of large
    logits keep the same bound, and each row's gradient sums to 0, as a softmax CE's does."""
    z = torch.tensor([[0.0, -3.9, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)  # bg, c0, c1, c2
    obj = torch.softmax(z[0, 1:].detach(), 0)
    assert 0.005 < float(obj[0]) < 0.02 and 0.4 < float(obj[1]) < 0.6
    loss = SeesawLoss(K, "softmax")
    loss.cum_samples += torch.tensor([9.0, 1.0, 1.0], dtype=torch.float64)  # class 0 the frequent one
    loss(z, torch.tensor([0])).backward()
    assert float(z.grad.abs().max()) <= 1.0 and abs(float(z.grad.sum())) < 1e-12
    # the rarer confused classes are pushed down at the full softmax rate: compensation undoes
    # mitigation for a confused class (without it, q = 0, they get (1/10)^0.8 of it)
    assert float(z.grad[0, 2]) > 0.49
    mitigated = z.detach().clone().requires_grad_(True)
    only_p = SeesawLoss(K, "softmax", q=0.0)
    only_p.cum_samples += torch.tensor([9.0, 1.0, 1.0], dtype=torch.float64)
    only_p(mitigated, torch.tensor([0])).backward()
    assert float(mitigated.grad[0, 2]) < 0.5 * float(z.grad[0, 2])
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        big = (torch.randn(64, K + 1, generator=g, dtype=torch.float64) * 8).requires_grad_(True)
        classes = torch.randint(-1, K, (64,), generator=g)
        SeesawLoss(K)(big, classes).backward()
        assert float(big.grad.abs().max()) <= 1.0 + 1e-12
        assert torch.allclose(big.grad.sum(1), torch.zeros(64, dtype=torch.float64), atol=1e-10)


def test_seesaw_refuses_sigmoid_heads_and_runs_with_faster_rcnn_only():
    with pytest.raises(ValueError, match="softmax head"):
        SeesawLoss(K, "sigmoid")
    assert Seesaw.supports("detection", "faster-rcnn") and not Seesaw.supports("detection", "fcos")
    assert not Seesaw.supports("detection", "retinanet")


@pytest.mark.parametrize("head", ["softmax"])
def test_seesaw_p_q_zero_is_plain_ce_or_bce(head):
    loss = SeesawLoss(K, head, p=0.0, q=0.0)
    for z, c in _batches(head):
        if head == "softmax":
            ref = F.cross_entropy(z, c + 1, reduction="sum")
        else:
            target = torch.zeros_like(z)
            target[c >= 0, c[c >= 0]] = 1
            ref = F.binary_cross_entropy_with_logits(z, target, reduction="sum")
        assert torch.allclose(loss(z, c), ref, rtol=1e-6)


# ------------------------------------------------------------------------------------ eqlv2

class EQLv2ByHand:
    """The official EQLv2, in NumPy: weights from the state before the call, then the weighted
    gradient magnitudes of the object columns are added."""

    def __init__(self, head, gamma=12.0, mu=0.8, alpha=4.0):
        self.head, self.gamma, self.mu, self.alpha = head, gamma, mu, alpha
        self.pos, self.neg, self.started = np.zeros(K), np.zeros(K), False

    def weights(self):
        if not self.started:
            return np.ones(K), np.ones(K)
        g = self.pos / (self.neg + 1e-10)
        neg_w = 1 / (1 + np.exp(-self.gamma * (g - self.mu)))
        return 1 + self.alpha * (1 - neg_w), neg_w

    def __call__(self, z, classes):
        z = z.double().numpy()
        pos_w, neg_w = self.weights()
        y = np.zeros_like(z)
        for m, c in enumerate(classes.tolist()):
            if self.head == "softmax":
                y[m, c + 1] = 1  # background items: column 0
            elif c >= 0:
                y[m, c] = 1
        if self.head == "softmax":
            pos_w, neg_w = np.r_[1.0, pos_w], np.r_[1.0, neg_w]
        w = y * pos_w + (1 - y) * neg_w
        s = 1 / (1 + np.exp(-z))
        loss = float((w * -(y * np.log(s) + (1 - y) * np.log(1 - s))).sum())
        grad = np.abs(s - y) * w
        off = 1 if self.head == "softmax" else 0
        self.pos += (grad * y).sum(0)[off:]
        self.neg += (grad * (1 - y)).sum(0)[off:]
        self.started = True
        return loss


@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_eqlv2_equals_official_formula_with_accumulated_gradients(head):
    b1, b2 = _batches(head)
    loss, ref = EQLv2Loss(K, head), EQLv2ByHand(head)
    first = float(loss(*b1))
    assert math.isclose(first, ref(*b1), rel_tol=1e-5)
    target = torch.zeros(len(b1[1]), b1[0].shape[1])
    cls = b1[1] + (1 if head == "softmax" else 0)
    keep = cls >= 0
    target[keep, cls[keep]] = 1
    assert math.isclose(first, float(F.binary_cross_entropy_with_logits(b1[0], target, reduction="sum")),
                        rel_tol=1e-6)  # no statistics yet: plain BCE
    assert np.allclose(loss.pos_grad.numpy(), ref.pos, rtol=1e-6)
    assert np.allclose(loss.neg_grad.numpy(), ref.neg, rtol=1e-6)
    pos_w, neg_w = loss.class_weights()
    ref_pos_w, ref_neg_w = ref.weights()
    assert np.allclose(pos_w.numpy(), ref_pos_w, rtol=1e-6) and np.allclose(neg_w.numpy(), ref_neg_w, rtol=1e-6)
    # class 0 (4 of 7 items) keeps its negatives; the rare classes' negatives are damped
    assert neg_w[0] > 0.9 and (neg_w[1:] < 0.5).all() and (pos_w[1:] > 2.5).all()
    second = float(loss(*b2))
    assert math.isclose(second, ref(*b2), rel_tol=1e-5)
    assert abs(second - float(EQLv2Loss(K, head)(*b2))) > 1e-2
    assert np.allclose(loss.pos_grad.numpy(), ref.pos, rtol=1e-6)


@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_eqlv2_with_unit_weights_is_plain_bce(head):
    loss = EQLv2Loss(K, head, mu=-100.0)  # f(g) = 1 for every g >= 0: pos_w = neg_w = 1
    for z, c in _batches(head):
        target = torch.zeros_like(z)
        col = c + 1 if head == "softmax" else c
        target[col >= 0, col[col >= 0]] = 1
        assert torch.allclose(loss(z, c), F.binary_cross_entropy_with_logits(z, target, reduction="sum"), rtol=1e-6)
    pos_w, neg_w = loss.class_weights()
    assert torch.equal(pos_w, torch.ones(K, dtype=pos_w.dtype)) and torch.equal(neg_w, torch.ones(K, dtype=neg_w.dtype))


# ------------------------------------------------------------------------------------ methods

@pytest.mark.parametrize("cls,module", [(Seesaw, SeesawLoss), (EQLv2, EQLv2Loss)])
def test_criterion_is_a_fresh_module_per_call(cls, module):
    train = tiny_sceneset()
    for head in ("softmax",) if cls is Seesaw else ("sigmoid", "softmax"):
        ctx = tiny_scene_context(train, head=head)
        method = cls()
        a = method.criterion(ctx)
        z, c = _batches(head)[0]
        a(z, c)
        b = method.criterion(ctx)
        assert isinstance(b, module) and b is not a and b.head == head
        assert all(float(t.abs().sum()) == 0 for t in b.buffers())


@pytest.mark.parametrize("cls", [Seesaw, EQLv2])
def test_contract(cls):
    check_method(cls)


@pytest.mark.parametrize("name,params", [("seesaw", {"p": -1}), ("seesaw", {"q": float("nan")}),
                                         ("eqlv2", {"gamma": -1}), ("eqlv2", {"alpha": -0.5}),
                                         ("eqlv2", {"mu": float("inf")})])
def test_bad_parameters(name, params):
    with pytest.raises(UsageError):
        {"seesaw": Seesaw, "eqlv2": EQLv2}[name](**params)


@pytest.mark.parametrize("name", ["seesaw", "eqlv2"])
def test_smoke_cell(name, tmp_path):
    rec = run_smoke_cell(name, tmp_path, track="detection", recipe_params={"n_max": 60})
    assert rec["status"] == "ok"


def test_faster_rcnn_scoring_hook_equals_torchvisions_with_softmax_and_eqlv2_scores_officially():
    """The detector's roi_scores replaces only the score function: with softmax it gives exactly
    torchvision's postprocess_detections; eqlv2 sets the official sigma(z_j)(1 - sigma(z_bg))."""
    from torchvision.models.detection.roi_heads import RoIHeads

    from imbench.baselines.eqlv2 import eqlv2_scores
    from imbench.tasks.detection.models import build_detector

    det = build_detector("faster-rcnn", num_classes=K, in_channels=1, image_size=32, mean=[0.2], std=[0.3])
    heads = det.model.roi_heads
    g = torch.Generator().manual_seed(5)
    proposals = [torch.rand(30, 2, generator=g).mul(20).repeat(1, 2) + torch.tensor([0, 0, 6.0, 6.0]) for _ in range(2)]
    logits = torch.randn(60, K + 1, generator=g) * 3
    regression = torch.randn(60, 4 * (K + 1), generator=g) * 0.1
    shapes = [(32, 32), (32, 32)]
    theirs = RoIHeads.postprocess_detections(heads, logits, regression, proposals, shapes)
    det.roi_scores = lambda z: F.softmax(z, -1)
    ours = heads.postprocess_detections(logits, regression, proposals, shapes)
    for a, b in zip(ours, theirs):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    det.roi_scores = None
    ctx = tiny_scene_context(tiny_sceneset(), head="softmax", model="faster-rcnn")
    assert EQLv2().adapt_model(det, ctx).roi_scores is eqlv2_scores
    z = torch.tensor([[0.5, 2.0, -1.0, 0.0]])
    s = eqlv2_scores(z)
    bg = 1 / (1 + math.exp(-0.5))
    assert torch.allclose(s[0, 1:], torch.tensor([(1 / (1 + math.exp(-v))) * (1 - bg) for v in (2.0, -1.0, 0.0)]))
    scored = heads.postprocess_detections(logits, regression, proposals, shapes)
    assert [len(x) for x in scored[1]] != [] and not all(
        torch.equal(x, y) for x, y in zip(scored[1], theirs[1]))
