"""ASDN (A-Fast-RCNN's adversarial spatial dropout): the ROI hook's masks, the worst-window search,
the adversary's own updates, its separation from the detector, determinism, the contract and a
real Faster R-CNN cell."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imbench.benchmarks.contract import UsageError
from imbench.gans.asdn import ASDN, sample_drop, window_masks, worst_windows
from imbench.tasks.detection.models import build_detector
from imbench.testing import check_method, tiny_scene_context, tiny_sceneset

SPOT = (3, 4)  # the one place the test box head reads


def _setup(model="faster-rcnn", epochs=4, seed=0, **params):
    train = tiny_sceneset()
    ctx = tiny_scene_context(train, epochs=epochs, seed=seed, head="softmax" if model == "faster-rcnn" else "sigmoid",
                             model=model)
    torch.manual_seed(0)
    det = build_detector(model, num_classes=3, in_channels=1, image_size=32, mean=[0.2], std=[0.3])
    method = ASDN(**params)
    return method, method.adapt_model(det, ctx), ctx


def _rois(n=12, channels=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand(n, channels, 7, 7, generator=g) + 0.1  # no zero before the mask
    classes = torch.tensor([0, -1, 1, 2, -1, 0, 1, -1, 2, 0, 1, -1][:n])
    return features, classes


class ReadOne(nn.Module):
    """A box head that reads only channel 0 at SPOT: the true class's logit (column 1..K) is
    8 x that value, the others 0; so dropping SPOT is what hurts, and nothing else does."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        return x[:, 0, SPOT[0], SPOT[1]][:, None].expand(-1, self.num_classes + 1).clone()


class ReadOnePredictor(nn.Module):
    def __init__(self, labels):
        super().__init__()
        self.labels = labels  # 0..K-1 of the ROIs the test feeds

    def forward(self, h):
        logits = torch.zeros_like(h)
        logits[torch.arange(len(h)), self.labels + 1] = 8.0 * h[:, 0]
        return logits, torch.zeros(len(h), 4 * h.shape[1])


def _read_one(det, fg_classes):
    heads = det.model.roi_heads
    heads.box_head, heads.box_predictor = ReadOne(), ReadOnePredictor(fg_classes)


@pytest.mark.parametrize("fraction,expected", [(0.3, 15), (1 / 3, 16), (0.25, 12), (0.5, 24)])
def test_hook_zeroes_exactly_the_fraction_of_each_foreground_roi_and_leaves_background_alone(fraction, expected):
    method, det, _ = _setup(drop_fraction=fraction, clean_batches=0.0)
    method.stage = "joint"
    features, classes = _rois()
    out = det.roi_feature_hook(features, classes)
    assert out.shape == features.shape
    for f, o, c in zip(features, out, classes.tolist()):
        if c < 0:
            assert torch.equal(o, f)
            continue
        zero = (o == 0).all(0)  # a dropped place is zero in every channel
        assert int(zero.sum()) == expected == round(fraction * 49)
        assert torch.equal(o[:, ~zero], f[:, ~zero])  # the rest is untouched
    _, _, drop = method._record
    assert drop.shape == (int((classes >= 0).sum()), 7, 7) and (drop.sum((1, 2)) == expected).all()


def test_hook_drops_among_the_adversarys_top_places_and_exactly_its_top_k_with_pool_1():
    features, classes = _rois()
    fg = classes >= 0
    for pool, top in ((1.0, 15), (4 / 3, 20)):  # the official 15 of the top 20 by default
        method, det, _ = _setup(sample_pool=pool, clean_batches=0.0)
        method.stage = "joint"
        out = det.roi_feature_hook(features, classes)
        with torch.no_grad():
            scores = method.adversary_net(features[fg]).reshape(-1, 49)
        best = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, scores.topk(top, 1).indices, True)
        dropped = (out[fg] == 0).all(1).reshape(-1, 49)
        assert (dropped & ~best).sum() == 0  # never outside the top `top`
        if pool == 1.0:
            assert torch.equal(dropped, best)


@pytest.mark.parametrize("clean,masked", [(0.5, [0, 1, 0, 1, 0, 1]), (0.0, [1] * 6), (1 / 3, [0, 1, 1, 0, 1, 1])])
def test_clean_batches_leave_that_share_of_joint_batches_unmasked(clean, masked):
    method, det, ctx = _setup(clean_batches=clean)
    method.stage = "joint"
    features, classes = _rois()
    seen = []
    for _ in range(6):
        out = det.roi_feature_hook(features, classes)
        seen.append(int(not torch.equal(out, features)))
        assert (method._record is not None) == bool(seen[-1])  # a clean batch is not scored
        method.adversary(det, None, ctx)
    assert seen == masked
    note = ctx.record["asdn"]
    assert note["masked_batches"] == sum(masked) and note["joint_batches"] == 6
    assert note["masked_rois"] == sum(masked) * int((classes >= 0).sum())


def test_pretrain_stage_leaves_features_alone_and_stages_follow_the_epochs():
    method, det, ctx = _setup(epochs=8)
    assert method.pretrain_epochs == 2 and method.stage == "pretrain"
    features, classes = _rois()
    assert torch.equal(det.roi_feature_hook(features, classes), features)
    ctx.epochs = 8
    stages = []
    for e in range(8):
        method.on_epoch(e, ctx)
        stages.append(method.stage)
    assert stages == ["pretrain"] * 2 + ["joint"] * 6


def test_windows_tile_the_map_as_the_official_code():
    w = window_masks(7, 2)
    assert w.shape == (16, 7, 7) and (w.sum((1, 2)) == 4).all() and (w.sum(0) > 0).all()
    starts = sorted({int(m.nonzero()[:, 0].min()) for m in w})
    assert starts == [0, 2, 4, 5]  # stride 2, the last one shifted inward
    assert window_masks(7, 3).shape == (9, 7, 7)


def test_worst_window_search_picks_the_window_over_the_one_place_the_head_reads():
    features, classes = _rois()
    fg = classes >= 0
    x, c = features[fg], classes[fg]
    head, pred = ReadOne(), ReadOnePredictor(c)
    windows = window_masks(7, 2)
    idx, losses = worst_windows(x, c, lambda f: pred(head(f))[0], windows)
    expected = int(windows[:, SPOT[0], SPOT[1]].argmax())
    assert windows[expected, SPOT[0], SPOT[1]] == 1 and windows[:, SPOT[0], SPOT[1]].sum() == 1
    assert (idx == expected).all()
    # the loss it compares is the cross-entropy of the box head with the window dropped
    for j in (0, expected):
        ref = F.cross_entropy(pred(head(x * (1 - windows[j])))[0], c + 1, reduction="none")
        assert torch.allclose(losses[j], ref)


def test_pretraining_fits_the_adversary_to_the_worst_window():
    method, det, ctx = _setup(lr=1e-2)
    features, classes = _rois()
    _read_one(det, classes[classes >= 0])
    before = [p.detach().clone() for p in det.parameters()]
    for _ in range(60):
        det.roi_feature_hook(features, classes)
        assert method.adversary(det, None, ctx) is None  # no loss term for the detector
    assert all(torch.equal(a, b) for a, b in zip(before, det.parameters()))  # the detector is not stepped
    assert all(p.grad is None for p in det.parameters())
    window = window_masks(7, 2)[int(window_masks(7, 2)[:, SPOT[0], SPOT[1]].argmax())].bool()
    with torch.no_grad():
        scores = method.adversary_net(features[classes >= 0]).reshape(-1, 49)
    top4 = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, scores.topk(4, 1).indices, True)
    assert (top4 == window.reshape(1, 49)).all()
    note = ctx.record["asdn"]
    assert note["pretrain_rois"] == 60 * int((classes >= 0).sum()) and note["pretrain_mean_window_loss_gain"] > 0
    json.dumps(note)


@pytest.mark.parametrize("pool", [1.0, 4 / 3])
def test_joint_stage_rewards_only_masks_that_hurt_and_keeps_hurting_after_pretraining(pool):
    """The paper's order: pre-train on the worst window, then joint updates from sampled masks:
    an ROI counts as hard exactly when its mask covers the place the box head reads, and the
    adversary keeps that place among the ones it drops (always with a deterministic top-k, with
    the chance k / pool when k of its top ``pool`` are drawn)."""
    method, det, ctx = _setup(sample_pool=pool)  # the default lr; every other joint batch clean
    features, classes = _rois()
    fg = classes >= 0
    _read_one(det, classes[fg])
    for _ in range(300):
        det.roi_feature_hook(features, classes)
        method.adversary(det, None, ctx)
    method.stage = "joint"
    covered = []
    for step in range(80):
        out = det.roi_feature_hook(features, classes)
        if step % 2 == 0:  # a clean batch: the detector sees clean features, the adversary learns nothing
            assert torch.equal(out, features) and method._record is None
            before = [p.detach().clone() for p in method.adversary_net.parameters()]
            assert method.adversary(det, None, ctx) is None
            assert all(torch.equal(a, b) for a, b in zip(before, method.adversary_net.parameters()))
            continue
        drop = method._record[2]
        assert torch.equal((out[fg] == 0).all(1), drop)
        with torch.no_grad():
            scores = method.adversary_net(features[fg]).reshape(-1, 49)
        assert ((scores > scores[:, SPOT[0] * 7 + SPOT[1], None]).sum(1) < method.pool).all()  # still a candidate
        hits = int(drop[:, SPOT[0], SPOT[1]].sum())
        hard_before = method._stats["hard"]
        method.adversary(det, None, ctx)
        assert method._stats["hard"] - hard_before == hits
        covered.append(hits / int(fg.sum()))
    note = ctx.record["asdn"]
    assert note["hard_fraction"] == pytest.approx(sum(covered) / len(covered), abs=1e-6)
    assert note["mean_dropped_fraction"] == pytest.approx(15 / 49, abs=1e-6)
    if pool == 1.0:
        assert min(covered) == 1.0
    else:
        assert 0.6 < note["hard_fraction"] < 0.9  # 15 / 20 = 0.75 expected


def test_joint_loss_is_bce_towards_the_hard_sampled_masks():
    method, det, ctx = _setup(clean_batches=0.0)
    method.stage = "joint"
    features, classes = _rois()
    fg = classes >= 0
    _read_one(det, classes[fg])
    det.roi_feature_hook(features, classes)
    drop = method._record[2].float()
    with torch.no_grad():
        logits = method.adversary_net(features[fg])
    hard = drop[:, SPOT[0], SPOT[1]]  # the true-class probability falls by > 10 % exactly there
    assert 0 < hard.sum() < len(hard)
    ref = (F.binary_cross_entropy_with_logits(logits, drop, reduction="none").sum((1, 2)) * hard).sum() / (len(hard) * 49)
    method.adversary(det, None, ctx)
    (entry,) = ctx.record["asdn"]["adversary_loss"]
    assert entry["stage"] == "joint" and entry["mean_bce"] == pytest.approx(float(ref), abs=1e-6)


def test_adversary_is_not_part_of_the_detector():
    method, det, _ = _setup()
    adv = {id(p) for p in method.adversary_net.parameters()}
    assert adv and not adv & {id(p) for p in det.parameters()}
    fresh = build_detector("faster-rcnn", num_classes=3, in_channels=1, image_size=32, mean=[0.2], std=[0.3])
    assert det.state_dict().keys() == fresh.state_dict().keys()
    assert not any(isinstance(m, type(method.adversary_net)) for m in det.modules())


def test_models_without_roi_head_are_left_alone():
    method, det, ctx = _setup(model="fcos")
    assert det.roi_feature_hook is None and method.adversary_net is None
    assert method.adversary(det, None, ctx) is None
    assert ASDN.supports("detection", "faster-rcnn") and not ASDN.supports("detection", "fcos")


def test_same_seed_same_masks_and_adversary():
    def run(seed):
        method, det, ctx = _setup(lr=1e-2, seed=seed, clean_batches=0.0)
        features, classes = _rois()
        _read_one(det, classes[classes >= 0])
        masks = []
        for stage in ("pretrain", "pretrain", "joint", "joint", "joint"):
            method.stage = stage
            masks.append(det.roi_feature_hook(features, classes))
            method.adversary(det, None, ctx)
        return masks, [p.detach().clone() for p in method.adversary_net.parameters()], ctx.record
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip(a[0], b[0]))
    assert all(torch.equal(u, v) for u, v in zip(a[1], b[1]))
    assert a[2] == b[2]
    assert not torch.equal(a[1][0], c[1][0])  # the adversary's start comes from the cell's seed
    assert not all(torch.equal(u, v) for u, v in zip(a[0][2:], c[0][2:]))


def test_sample_drop_counts():
    scores = torch.randn(5, 7, 7)
    drop = sample_drop(scores, 16, 21, torch.Generator().manual_seed(0))
    assert drop.dtype == torch.bool and (drop.sum((1, 2)) == 16).all()


@pytest.mark.parametrize("params", [{"pretrain": 1.5}, {"drop_fraction": 0.0}, {"drop_fraction": 1.0}, {"lr": 0.0},
                                    {"window": 0}, {"sample_pool": 0.5}, {"score_drop": 1.0},
                                    {"clean_batches": 1.0}])
def test_bad_parameters_are_usage_errors(params):
    with pytest.raises(UsageError):
        ASDN(**params)
    with pytest.raises(UsageError):
        _setup(window=8)


def test_contract():
    check_method(ASDN)


def test_faster_rcnn_smoke_cell(tmp_path: Path):
    from imbench.benchmarks.contract.records import read_record
    from imbench.benchmarks.plugins import load_methods
    from imbench.benchmarks.runner import execute_cell, validate
    from imbench.benchmarks.suite import Overrides, expand

    load_methods(())
    suite = {"name": "contract", "grids": [{
        "track": "detection", "datasets": ["digit-scenes"], "recipes": [{"name": "rare-class", "ir": 10.0, "n_max": 60}],
        "methods": ["asdn"], "models": ["faster-rcnn"], "seeds": [0], "profile": "smoke"}]}
    runtime = {"out": str(tmp_path), "device": "cpu", "plugins": []}
    t = time.perf_counter()
    (cell,) = validate(expand(suite, Overrides()), runtime)
    rec = read_record(Path(execute_cell(cell, runtime)["path"]))
    print(f"asdn smoke cell: {time.perf_counter() - t:.1f} s")
    assert rec["status"] == "ok"
    note = rec["extras"]["asdn"]
    assert note["masked_rois"] > 0 and note["mean_dropped_fraction"] == pytest.approx(15 / 49, abs=1e-6)
    assert note["scored_rois"] == note["masked_rois"]  # the clean batches are not scored
