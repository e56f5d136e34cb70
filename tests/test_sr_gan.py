"""SR-GAN (Perceptual GAN's feature super-resolution of small objects): the ROI hook enhances exactly
the small proposals, in training and evaluation; G is in the detector, D is not; D's own step,
the generator's adversarial term and where its gradient goes; skips, determinism, the contract
and a real Faster R-CNN cell."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from imbench.benchmarks.contract import UsageError
from imbench.gans.sr_gan import SRGAN, box_areas
from imbench.tasks.detection.models import build_detector
from imbench.tasks.detection.train import model_targets
from imbench.testing import check_method, tiny_scene_context, tiny_sceneset


def _source(small: float):
    return SimpleNamespace(info={"area_ranges": {"all": [0, 1e10], "small": [0, small], "medium": [small, 1e5],
                                                 "large": [1e5, 1e10]}})


def _setup(model="faster-rcnn", small: float | None = 100.0, seed=0, **params):
    """The tiny scenes have squares of side 6, 8, 10 (areas 36, 64, 100): with a small threshold of
    100 the first two classes' boxes (and the proposals around them) are small."""
    train = tiny_sceneset()
    ctx = tiny_scene_context(train, seed=seed, head="softmax" if model == "faster-rcnn" else "sigmoid", model=model)
    if small is not None:
        ctx.source = _source(small)
    torch.manual_seed(0)
    det = build_detector(model, num_classes=3, in_channels=1, image_size=32, mean=[0.2], std=[0.3])
    method = SRGAN(**params)
    return method, method.adapt_model(det, ctx), ctx, train


# a threshold with object ROIs on both sides: class 0's squares (area 36) small, classes 1 and 2
# (64, 100) not (D's sets are object ROIs only)
OBJECTS_BOTH_SIDES = 50.0


def _forward(det, train, idx=(0, 1, 2, 3)):
    det.train()
    images = [train.images[i].float() / 255.0 for i in idx]
    targets = [train.targets[i] for i in idx]
    return sum(det(images, model_targets(targets, "cpu")).values())


def _rois(seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand(7, 32, 7, 7, generator=g)
    proposals = [torch.tensor([[0.0, 0.0, 4.0, 4.0],     # 16: small
                               [0.0, 0.0, 20.0, 20.0],   # 400
                               [2.0, 3.0, 11.0, 13.0]]),  # 90: small
                 torch.tensor([[5.0, 5.0, 15.0, 15.0],   # 100: not small (threshold is strict)
                               [1.0, 1.0, 3.0, 30.0],    # 58: small
                               [0.0, 0.0, 31.0, 31.0],   # 961
                               [4.0, 4.0, 4.0, 9.0]])]   # 0 (degenerate): small
    return features, proposals, torch.tensor([True, False, True, False, True, False, True])


def test_threshold_from_the_source_else_the_digit_scenes_rule():
    method, _det, ctx, _ = _setup(small=100.0)
    assert method.threshold == 100.0 and ctx.record["sr_gan"]["small_area_threshold"] == 100.0
    assert ctx.record["sr_gan"]["threshold_from"] == "source area_ranges"
    method, _det, ctx, _ = _setup(small=None)
    assert method.threshold == (32 * 32 / 256) ** 2 == 16.0  # compose.area_thresholds(32)[0]
    from imbench.data_recipes.scenes.compose import area_thresholds
    assert method.threshold == area_thresholds(32)[0]


def test_hook_enhances_exactly_the_small_rois_and_leaves_the_others_identical():
    _method, det, _, _ = _setup()
    features, proposals, small = _rois()
    assert torch.equal(box_areas(proposals) < 100.0, small)
    out = det.roi_enhance_hook(features, proposals)
    assert out.shape == features.shape
    assert torch.equal(out[~small], features[~small])  # bit for bit
    with torch.no_grad():
        expected = features[small] + det.sr_generator(features[small])
    assert torch.allclose(out[small], expected, atol=1e-6)
    assert ((out[small] - features[small]).abs().flatten(1).amax(1) > 1e-4).all()  # each small row changed
    # no small ROI: the features come back as they are
    none = [p[box_areas([p]) >= 100.0] for p in proposals]
    assert torch.equal(det.roi_enhance_hook(features[~small], none), features[~small])


def test_discriminator_sees_object_rois_only_as_the_papers_large_vs_small_objects():
    """In training the hook gets the sampled ROIs' classes: D's fake set is the small *object*
    ROIs, its real set the not-small *object* ROIs; background proposals are in neither (the
    generator still enhances every small proposal, as in evaluation, where classes are unknown)."""
    method, det, ctx, _ = _setup()
    features, proposals, small = _rois()
    classes = torch.tensor([2, -1, -1, 0, 1, -1, -1])  # objects: rows 0 (small), 3 (not), 4 (small)
    det.train()
    with torch.enable_grad():
        out = det.roi_enhance_hook(features, proposals, classes)
    fake, real = method._last
    objects = classes >= 0
    assert torch.equal(fake, features[small & objects]) and torch.equal(real, features[~small & objects])
    assert len(fake) == 2 and len(real) == 1
    assert not torch.equal(out[2], features[2])  # a small background proposal is still enhanced
    method._note(ctx)
    assert ctx.record["sr_gan"]["background_rois_left_out_of_d"] == 4


def test_hook_runs_in_evaluation_and_changes_the_detections():
    train = tiny_sceneset()
    images = [train.images[i].float() / 255.0 for i in range(2)]

    def detections(small, hook=True):
        method, det, ctx, _ = _setup(small=small)
        if not hook:
            det.roi_enhance_hook = None
        det.eval()
        with torch.no_grad():
            out = det(images)
        return out, method, ctx

    plain, _, _ = detections(100.0, hook=False)
    enhanced, method, ctx = detections(1e9)  # every proposal small
    assert method._last is None  # evaluation stores nothing for D
    assert ctx.record["sr_gan"]["eval_small_roi_fraction"] == 1.0
    assert len(plain[0]["scores"]) and len(enhanced[0]["scores"])
    differ = [len(a["scores"]) != len(b["scores"]) or not torch.equal(a["scores"], b["scores"])
              for a, b in zip(plain, enhanced)]
    assert all(differ)
    some, method, ctx = detections(62.0)  # some proposals small, some not (areas 32 to 72 here)
    assert 0 < ctx.record["sr_gan"]["eval_small_roi_fraction"] < 1
    assert any(len(a["scores"]) != len(b["scores"]) or not torch.equal(a["scores"], b["scores"])
               for a, b in zip(plain, some))
    untouched, _, _ = detections(0.0)  # no proposal small: the same detections as without the hook
    for a, b in zip(plain, untouched):
        assert all(torch.equal(a[k], b[k]) for k in ("boxes", "scores", "labels"))


def test_generator_is_in_the_detector_and_the_discriminator_is_not():
    method, det, _, train = _setup()
    det_params = {id(p) for p in det.parameters() if p.requires_grad}  # what the track's SGD is built on
    G = {id(p) for p in method.generator.parameters()}
    D = {id(p) for p in method.discriminator.parameters()}
    assert G and G <= det_params
    assert D and not D & det_params
    assert any(k.startswith("sr_generator.") for k in det.state_dict())
    assert not any(m is method.discriminator for m in det.modules())
    # the detection loss alone trains G (the perception branch)
    _forward(det, train).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.generator.parameters())


def test_discriminator_step_and_adversarial_term_match_their_formulas_and_leave_the_detector_alone():
    method, det, ctx, train = _setup(small=OBJECTS_BOTH_SIDES, adv_weight=0.3, lr=1e-3)
    _forward(det, train)
    small, real = method._last
    assert len(small) > 0 and len(real) > 0
    D0 = copy.deepcopy(method.discriminator)
    det_before = {k: v.detach().clone() for k, v in det.state_dict().items()}
    term = method.adversary(det, None, ctx)
    # D's step: one Adam step on BCE(D(real), 1) + BCE(D(G-enhanced small), 0), all detached
    with torch.no_grad():
        fake = small + det.sr_generator(small)
    opt = torch.optim.Adam(D0.parameters(), lr=1e-3, betas=(0.5, 0.999))
    ref = (F.binary_cross_entropy_with_logits(D0(real), torch.ones(len(real)))
           + F.binary_cross_entropy_with_logits(D0(fake), torch.zeros(len(fake))))
    opt.zero_grad()
    ref.backward()
    opt.step()
    for a, b in zip(D0.parameters(), method.discriminator.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    # the detector's weights are unchanged, and no gradient landed on them
    assert all(torch.equal(det_before[k], v) for k, v in det.state_dict().items())
    assert all(p.grad is None for p in det.parameters())
    # G's term: weight * BCE(D(enhanced small), real) with the updated D
    with torch.no_grad():
        expected = 0.3 * F.binary_cross_entropy_with_logits(method.discriminator(fake), torch.ones(len(fake)))
    assert term.ndim == 0 and torch.allclose(term.detach(), expected, atol=1e-6)
    note = ctx.record["sr_gan"]
    assert note["d_steps"] == 1 and note["per_epoch"][0]["d_loss"] == pytest.approx(float(ref.detach()), abs=1e-5)
    assert 0 < note["mean_small_roi_fraction"] < 1
    json.dumps(note)


def test_discriminator_step_changes_only_the_discriminator():
    method, det, ctx, train = _setup(small=OBJECTS_BOTH_SIDES)
    _forward(det, train)
    before = [p.detach().clone() for p in method.discriminator.parameters()]
    method.adversary(det, None, ctx)
    assert any(not torch.equal(a, b) for a, b in zip(before, method.discriminator.parameters()))


def test_adversarial_gradient_reaches_the_generator_only():
    method, det, ctx, train = _setup(small=OBJECTS_BOTH_SIDES)
    _forward(det, train)  # not backpropagated: only the adversarial term is
    term = method.adversary(det, None, ctx)
    for p in method.discriminator.parameters():
        p.grad = None
    term.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.generator.parameters())
    assert all(p.grad is None for p in method.discriminator.parameters())
    G = {id(p) for p in method.generator.parameters()}
    assert all(p.grad is None for p in det.parameters() if id(p) not in G)  # not the backbone, not the heads
    assert all(p.requires_grad for p in method.discriminator.parameters())  # D is unfrozen again


@pytest.mark.parametrize("small", [0.0, 1e9])  # no small ROI / no not-small ROI
def test_batch_without_small_or_without_large_rois_is_skipped(small):
    method, det, ctx, train = _setup(small=small)
    _forward(det, train)
    before = [p.detach().clone() for p in method.discriminator.parameters()]
    assert method.adversary(det, None, ctx) is None
    assert all(torch.equal(a, b) for a, b in zip(before, method.discriminator.parameters()))
    assert ctx.record["sr_gan"]["skipped_batches"] == 1 and ctx.record["sr_gan"]["d_steps"] == 0
    assert method.adversary(det, None, ctx) is None  # nothing stored without a new forward


def test_models_without_roi_head_are_left_alone():
    method, det, ctx, _train = _setup(model="fcos")
    fresh = build_detector("fcos", num_classes=3, in_channels=1, image_size=32, mean=[0.2], std=[0.3])
    assert det.roi_enhance_hook is None and not hasattr(det, "sr_generator")
    assert det.state_dict().keys() == fresh.state_dict().keys()
    assert method.generator is None and method.adversary(det, None, ctx) is None and "sr_gan" not in ctx.record
    assert SRGAN.supports("detection", "faster-rcnn") and SRGAN.supports("detection", "faster-rcnn-resnet18")
    assert not SRGAN.supports("detection", "fcos") and not SRGAN.supports("classification")


def test_same_seed_same_training():
    def run():
        method, det, ctx, train = _setup(small=OBJECTS_BOTH_SIDES)
        opt = torch.optim.SGD([p for p in det.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
        losses = []
        for step in range(3):
            loss = _forward(det, train, idx=(step, step + 1, step + 2))
            extra = method.adversary(det, None, ctx)
            loss = loss + extra if extra is not None else loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return (losses, [p.detach().clone() for p in det.sr_generator.parameters()],
                [p.detach().clone() for p in method.discriminator.parameters()], ctx.record)
    a, b = run(), run()
    for u, v in zip(a[:3], b[:3]):
        assert all(torch.equal(x, y) for x, y in zip(u, v))
    assert a[3] == b[3] and a[3]["sr_gan"]["d_steps"] == 3


@pytest.mark.parametrize("params", [{"adv_weight": -0.1}, {"lr": 0.0}, {"blocks": -1}])
def test_bad_parameters_are_usage_errors(params):
    with pytest.raises(UsageError):
        SRGAN(**params)


def test_contract():
    check_method(SRGAN)


def test_faster_rcnn_smoke_cell(tmp_path: Path):
    from imbench.benchmarks.contract.records import read_record
    from imbench.benchmarks.plugins import load_methods
    from imbench.benchmarks.runner import execute_cell, validate
    from imbench.benchmarks.suite import Overrides, expand

    load_methods(())
    suite = {"name": "contract", "grids": [{
        "track": "detection", "datasets": ["digit-scenes"], "recipes": [{"name": "rare-class", "ir": 10.0, "n_max": 60}],
        "methods": ["sr-gan"], "models": ["faster-rcnn"], "seeds": [0], "profile": "smoke"}]}
    runtime = {"out": str(tmp_path), "device": "cpu", "plugins": []}
    t = time.perf_counter()
    (cell,) = validate(expand(suite, Overrides()), runtime)
    rec = read_record(Path(execute_cell(cell, runtime)["path"]))
    print(f"sr-gan smoke cell: {time.perf_counter() - t:.1f} s")
    assert rec["status"] == "ok"
    note = rec["extras"]["sr_gan"]
    assert note["threshold_from"] == "source area_ranges" and note["small_area_threshold"] > 0
    assert note["train_rois"] > 0 and note["eval_small_roi_fraction"] > 0
    assert "fid" not in rec["metrics"] or rec["metrics"]["fid"] is None
