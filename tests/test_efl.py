"""Equalized focal loss (``efl``): the first step is torchvision's sigmoid focal loss; afterwards
each class column is torchvision's focal loss at that class's own focusing factor, scaled by
γ_j / γ_b; the statistics are the gradients autograd back-propagates into the logits; dense heads
only (and eqlv2 two-stage only)."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from imbench.baselines.efl import EFL, EFLLoss
from imbench.baselines.eqlv2 import EQLv2
from imbench.benchmarks.contract.errors import UsageError
from imbench.testing import check_method, run_smoke_cell

K = 3


def _batch(seed: int, n: int = 40):
    g = torch.Generator().manual_seed(seed)
    classes = torch.full((n,), -1)
    classes[:6] = torch.tensor([0, 0, 0, 0, 1, 2])  # class 0 frequent, 1 and 2 rare
    return torch.randn(n, K, generator=g) * 2, classes


def _one_hot(classes):
    t = torch.zeros(len(classes), K)
    t[classes >= 0, classes[classes >= 0]] = 1
    return t


def test_first_step_is_torchvisions_sigmoid_focal_loss():
    z, c = _batch(0)
    loss = EFLLoss(K)(z, c)
    ref = sigmoid_focal_loss(z, _one_hot(c), alpha=0.25, gamma=2.0, reduction="sum")
    assert torch.allclose(loss, ref, rtol=1e-6)


def test_statistics_are_autograds_gradients_and_set_each_column_focusing_factor():
    efl = EFLLoss(K, gamma=2.0, alpha=0.25, scale=8.0)
    z1, c1 = _batch(1)
    z1.requires_grad_(True)
    (efl(z1, c1) / 6).backward()  # the head's normalisation: the collected gradients include it
    t = _one_hot(c1)
    g = z1.grad.abs().double()
    assert torch.allclose(efl.pos_grad, (g * t).sum(0)) and torch.allclose(efl.neg_grad, (g * (1 - t)).sum(0))
    ratio = (efl.pos_grad / efl.neg_grad).clamp(0, 1)
    assert torch.allclose(efl.pos_neg, ratio) and efl.updates == 1
    # rare classes (one positive among 40) get a larger focusing factor than the frequent one
    gamma = efl.focusing()
    assert gamma[0] < gamma[1] and gamma[0] < gamma[2] and (gamma >= 2.0).all() and (gamma <= 10.0).all()

    z2, c2 = _batch(2)
    t2 = _one_hot(c2)
    ours = efl(z2, c2)  # no autograd: collects nothing
    assert efl.updates == 1
    ref = sum(sigmoid_focal_loss(z2[:, j], t2[:, j], alpha=0.25, gamma=float(gamma[j]), reduction="sum")
              * float(gamma[j]) / 2.0 for j in range(K))
    assert torch.allclose(ours, ref.float(), rtol=1e-5)


def test_scale_zero_is_focal_loss_throughout():
    efl = EFLLoss(K, scale=0.0)
    for seed in (3, 4):
        z, c = _batch(seed)
        z.requires_grad_(True)
        out = efl(z, c)
        out.backward()
        assert torch.allclose(out, sigmoid_focal_loss(z, _one_hot(c), alpha=0.25, gamma=2.0, reduction="sum"))
    assert efl.updates == 2


def test_statistics_start_afresh_per_cell():
    from imbench.testing import tiny_scene_context, tiny_sceneset

    ctx = tiny_scene_context(tiny_sceneset(), head="sigmoid")
    a = EFL().criterion(ctx)
    z, c = _batch(5)
    z.requires_grad_(True)
    a(z[:, :ctx.num_classes], c.clamp(max=ctx.num_classes - 1)).backward()
    b = EFL().criterion(ctx)
    assert a.updates == 1 and b.updates == 0 and float(b.pos_grad.sum() + b.neg_grad.sum()) == 0


def test_contract():
    check_method(EFL)


@pytest.mark.parametrize("params", [{"gamma": 0}, {"alpha": 1.5}, {"scale": -1}, {"scale": math.inf}])
def test_bad_parameters(params):
    with pytest.raises(UsageError):
        EFL(**params)


def test_dense_heads_only_and_eqlv2_two_stage_only():
    assert "fcos" in EFL.models["detection"] and "faster-rcnn" not in EFL.models["detection"]
    assert "faster-rcnn" in EQLv2.models["detection"] and "fcos" not in EQLv2.models["detection"]


def test_smoke_cell(tmp_path):
    rec = run_smoke_cell("efl", tmp_path, track="detection", recipe_params={"n_max": 60})
    assert rec["status"] == "ok"
