"""Today's long-tail baselines (balanced-softmax, logit-adjustment, cb-sampling, drs, mixup-drw,
remix-drw, crt, tau-norm), the ``adjust_logits`` and ``second_stage`` hooks, deferred sampling, and the many / medium / few-shot and
sub-mode metrics: each against a property its paper states or an identity with torch's own loss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import recall_score

from imbench.baselines.balanced_softmax import BalancedSoftmax
from imbench.baselines.cb_sampling import CBSampling, class_sampling_weights
from imbench.baselines.crt import CRT
from imbench.baselines.drs import DRS
from imbench.baselines.logit_adjustment import LogitAdjustment, log_prior
from imbench.baselines.mixing import MixedDRWLoss, MixedLabels, remix_label_weights
from imbench.baselines.mixup_drw import MixupDRW
from imbench.baselines.remix_drw import RemixDRW
from imbench.baselines.tau_norm import TauNorm
from imbench.benchmarks.contract import Method
from imbench.benchmarks.contract.errors import UsageError
from imbench.benchmarks.contract.method import DeferredSampling, register_method
from imbench.benchmarks.plugins import method_class
from imbench.tasks.classification.metrics import classification_metrics, shot_groups, submode_recall
from imbench.tasks.schedule import EpochPlan, plan_orders, sampling_plan
from imbench.testing import check_method, run_smoke_cell, tiny_context, tiny_imageset

COUNTS = [60, 20, 6, 2]


def _minimise(loss_of, steps: int = 3000) -> torch.Tensor:
    """The logits z (C,) of one featureless input, fitted by gradient descent on loss_of(z)."""
    z = torch.zeros(len(COUNTS), requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(z).backward()
        opt.step()
    return z.detach()


def _expected_loss(criterion):
    """The training loss of a featureless input, in expectation over the long-tailed labels."""
    y = torch.repeat_interleave(torch.arange(len(COUNTS)), torch.tensor(COUNTS))
    return lambda z: criterion(z.expand(len(y), -1), y)


def test_balanced_softmax_learns_the_balanced_posterior():
    """Ren et al.'s claim: trained on the long tail, the raw logits model the balanced posterior.
    A featureless input (only the label prior to learn) ends with equal logits under balanced
    softmax, and with log n_c (the long-tailed prior) under plain CE."""
    ctx = tiny_context(tiny_imageset(counts=COUNTS))
    z_bs = _minimise(_expected_loss(BalancedSoftmax().criterion(ctx)))
    z_ce = _minimise(_expected_loss(F.cross_entropy))
    assert torch.allclose(z_bs - z_bs.mean(), torch.zeros(4), atol=1e-3)
    log_n = torch.log(torch.tensor(COUNTS, dtype=torch.float32))
    assert torch.allclose(z_ce - z_ce.mean(), log_n - log_n.mean(), atol=1e-3)


def test_logit_adjustment_loss_equals_balanced_softmax_at_tau_1_and_ce_at_tau_0():
    ctx = tiny_context(tiny_imageset(counts=COUNTS))
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(32, 4, generator=g) * 3, torch.randint(0, 4, (32,), generator=g)
    bs = BalancedSoftmax().criterion(ctx)(z, y)
    assert torch.allclose(LogitAdjustment().criterion(ctx)(z, y), bs, rtol=1e-6)
    assert torch.allclose(LogitAdjustment(tau=0.0).criterion(ctx)(z, y), F.cross_entropy(z, y), rtol=1e-6)
    # equal counts: balanced softmax is torch's CE
    even = tiny_context(tiny_imageset(counts=(5, 5, 5, 5)))
    assert torch.allclose(BalancedSoftmax().criterion(even)(z, y), F.cross_entropy(z, y), rtol=1e-6)


def test_posthoc_logit_adjustment_turns_the_ce_prior_into_the_balanced_one():
    """Menon et al.'s post-hoc form: CE learns log π_c + const for a featureless input; z − log π_c
    is then uniform. The loss form evaluates the raw logits; the post-hoc form trains as erm."""
    ctx = tiny_context(tiny_imageset(counts=COUNTS))
    posthoc = LogitAdjustment(mode="posthoc")
    assert posthoc.criterion(ctx) is None
    z = _minimise(_expected_loss(F.cross_entropy))
    adjusted = posthoc.adjust_logits(z[None], ctx)[0]
    assert torch.allclose(adjusted - adjusted.mean(), torch.zeros(4), atol=1e-3)
    assert torch.equal(LogitAdjustment().adjust_logits(z[None], ctx), z[None])
    # (N, C, H, W) logits (the segmentation track): the shift is along the class axis
    maps = torch.randn(2, 4, 3, 3)
    shifted = posthoc.adjust_logits(maps, ctx)
    assert torch.allclose(shifted[:, :, 1, 2], maps[:, :, 1, 2] - log_prior(COUNTS))
    assert torch.allclose(log_prior(COUNTS).exp().sum(), torch.tensor(1.0))


def test_posthoc_cell_trains_as_erm_and_differs_only_at_evaluation(tmp_path):
    erm = run_smoke_cell("erm", tmp_path / "erm")
    post = run_smoke_cell("logit-adjustment:mode=posthoc", tmp_path / "post")
    assert erm["extras"]["history"] == post["extras"]["history"]
    assert post["method_hooks"] == ["criterion", "adjust_logits"]
    assert erm["metrics"]["per_class_recall"] != post["metrics"]["per_class_recall"]


def test_cb_sampling_weights_carry_n_to_the_q_per_class():
    labels = torch.repeat_interleave(torch.arange(4), torch.tensor(COUNTS))
    for q in (0.0, 0.5, 1.0):
        w = class_sampling_weights(labels, 5, q)  # class 4 has no item
        per_class = torch.zeros(5, dtype=torch.float64).index_add_(0, labels, w)
        expected = torch.tensor([n ** q for n in COUNTS] + [0.0], dtype=torch.float64)
        assert torch.allclose(per_class, expected / expected.sum())
    assert torch.allclose(class_sampling_weights(labels, 4, 1.0), torch.full((88,), 1 / 88, dtype=torch.float64))
    ctx = tiny_context(tiny_imageset(counts=COUNTS))
    drawn = torch.multinomial(CBSampling().sampler(tiny_imageset(counts=COUNTS), ctx), 40000, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(labels[drawn], minlength=4) / 40000
    assert torch.allclose(freq, torch.full((4,), 0.25, dtype=freq.dtype), atol=0.01)


def test_drs_switches_from_permutations_to_class_balanced_draws_at_its_epoch():
    train = tiny_imageset(counts=COUNTS)
    ctx = tiny_context(train, epochs=10)
    out = DRS().sampler(train, ctx)
    assert isinstance(out, DeferredSampling) and out.before is None and out.start_epoch == 8
    assert ctx.record["drs_start_epoch"] == 8
    plan = EpochPlan(10, 8, "steps", len(train), len(train), sampling_plan(out, len(train), "drs"))
    orders = plan_orders(plan, torch.Generator().manual_seed(0))
    epochs = [orders(e) for e in range(10)]
    for order in epochs[:8]:  # erm's epochs: every item once
        assert torch.equal(order.sort().values, torch.arange(len(train)))
    late = torch.cat(epochs[8:])
    rare_share = float((train.labels[late] == 3).float().mean())
    assert rare_share > 0.1  # 2 of 88 items, drawn about a quarter of the time
    again = plan_orders(plan, torch.Generator().manual_seed(0))
    assert all(torch.equal(again(e), epochs[e]) for e in range(10))
    with pytest.raises(ValueError):
        DeferredSampling(None, None, -1)


def test_mixed_loss_is_torchs_soft_label_ce_and_weighted_ce_at_lambda_one():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 4, generator=g)
    a, b = torch.randint(0, 4, (16,), generator=g), torch.randint(0, 4, (16,), generator=g)
    lam = torch.rand(16, generator=g)
    loss = MixedDRWLoss(4)
    soft = lam[:, None] * F.one_hot(a, 4) + (1 - lam[:, None]) * F.one_hot(b, 4)
    assert torch.allclose(loss(z, MixedLabels(a, b, lam)), F.cross_entropy(z, soft.float()), rtol=1e-6)
    loss.weight.copy_(torch.tensor([0.5, 1.0, 2.0, 0.5]))
    per_item = F.cross_entropy(z, a, weight=loss.weight, reduction="none")
    assert torch.allclose(loss(z, MixedLabels(a, b, torch.ones(16))), per_item.mean(), rtol=1e-6)
    assert torch.allclose(loss(z, a), per_item.mean(), rtol=1e-6)


def test_remix_label_rule():
    n_a = torch.tensor([100.0, 100.0, 10.0, 10.0, 50.0])
    n_b = torch.tensor([10.0, 10.0, 100.0, 100.0, 40.0])
    # lam 0.3 < tau 0.5: a majority pair (ratio 10 >= 3) gives the label all to b; the others keep lam
    assert remix_label_weights(0.3, n_a, n_b, 3.0, 0.5).tolist() == pytest.approx([0.0, 0.0, 0.3, 0.3, 0.3])
    # lam 0.8: 1 - lam < tau, a minority pair (ratio 0.1 <= 1/3) gives it all to a
    assert remix_label_weights(0.8, n_a, n_b, 3.0, 0.5).tolist() == pytest.approx([0.8, 0.8, 1.0, 1.0, 0.8])


@pytest.mark.parametrize("cls", [MixupDRW, RemixDRW])
def test_mixing_methods_mix_with_a_seeded_permutation_and_switch_to_drw(cls):
    train = tiny_imageset(counts=COUNTS)
    ctx = tiny_context(train, epochs=10)
    method = cls()
    loss = method.criterion(ctx)
    method.on_epoch(0, ctx)
    x, y = train.images[:12].float() / 255, train.labels[:12]
    x2, mixed = method.augment((x, y), ctx)
    assert isinstance(mixed, MixedLabels) and len(mixed) == 12 and torch.equal(mixed.a, y)
    assert torch.equal(torch.sort(mixed.b).values, torch.sort(y).values)
    again = cls()
    again.criterion(ctx)
    again.on_epoch(0, ctx)
    x3, mixed3 = again.augment((x, y), ctx)
    assert torch.equal(x2, x3) and torch.equal(mixed.lam, mixed3.lam)
    assert torch.equal(loss.weight, torch.ones(4))
    method.on_epoch(8, ctx)
    assert loss.weight[3] > loss.weight[0] and math.isclose(float(loss.weight.sum()), 4.0, rel_tol=1e-5)


@pytest.mark.parametrize("cls", [BalancedSoftmax, LogitAdjustment, CBSampling, DRS, MixupDRW, RemixDRW, CRT, TauNorm])
def test_contract(cls):
    check_method(cls)


@pytest.mark.parametrize("name,params", [("logit-adjustment", {"mode": "both"}), ("logit-adjustment", {"tau": -1}),
                                         ("cb-sampling", {"q": 2}), ("drs", {"drs_start": 1.5}),
                                         ("mixup-drw", {"alpha": 0}), ("remix-drw", {"kappa": 0.5}),
                                         ("remix-drw", {"tau": 2}), ("crt", {"crt_start": 1.0}),
                                         ("tau-norm", {"tau": "big"}), ("tau-norm", {"val_fraction": 0})])
def test_bad_parameters(name, params):
    cls = {"logit-adjustment": LogitAdjustment, "cb-sampling": CBSampling, "drs": DRS, "mixup-drw": MixupDRW,
           "remix-drw": RemixDRW, "crt": CRT, "tau-norm": TauNorm}[name]
    with pytest.raises(UsageError):
        cls(**params)


@pytest.mark.parametrize("name", ["balanced-softmax", "logit-adjustment", "cb-sampling", "drs", "mixup-drw",
                                  "remix-drw", "crt", "tau-norm", "balanced-softmax+cb-sampling",
                                  "mixup-drw+cb-sampling", "ros+tau-norm"])
def test_smoke_cells_and_loss_plus_sampler_hybrids_run(name, tmp_path):
    rec = run_smoke_cell(name, tmp_path)
    assert rec["status"] == "ok" and rec["metrics"]["many_acc"] is not None


@pytest.mark.parametrize("name", ["balanced-softmax+logit-adjustment", "mixup-drw+ldam-drw"])
def test_two_losses_are_refused(name, tmp_path):
    with pytest.raises(UsageError, match="criterion"):
        run_smoke_cell(name, tmp_path)


def test_adjust_logits_is_exclusive_in_a_hybrid_and_reaches_the_part_that_sets_it():
    from imbench.benchmarks.composite import composite_class

    class Shift(Method):
        name = "shift-logits"
        tracks = ("classification",)

        def adjust_logits(self, logits, ctx):
            return logits + 1

    parts = {"shift-logits": Shift, "logit-adjustment": LogitAdjustment, "cb-sampling": CBSampling}
    with pytest.raises(UsageError, match="adjust_logits"):
        composite_class("shift-logits+logit-adjustment", parts.get)
    hybrid = composite_class("cb-sampling+shift-logits", parts.get)(**{"cb-sampling": {}, "shift-logits": {}})
    assert "adjust_logits" in hybrid.hooks()
    ctx = tiny_context(tiny_imageset(counts=COUNTS))
    assert torch.equal(hybrid.adjust_logits(torch.zeros(2, 4), ctx), torch.ones(2, 4))


def test_only_classification_methods_may_have_a_second_stage():
    class Staged(Method):
        name = "staged-segmenter"
        tracks = ("classification", "segmentation")

        def second_stage(self, model, ctx):
            return model

    with pytest.raises(UsageError, match="second_stage"):
        register_method(Staged)


def test_a_detection_method_cannot_override_adjust_logits():
    class Adjusting(Method):
        name = "adjusting-detector"
        tracks = ("classification", "detection")

        def adjust_logits(self, logits, ctx):
            return logits

    with pytest.raises(UsageError, match="adjust_logits"):
        register_method(Adjusting)


# ------------------------------------------------------------------------------------ metrics

def test_shot_groups_scale_liu_et_als_thresholds_to_the_set():
    g = shot_groups([500, 101, 100, 20, 19, 0])  # n_max 500: Liu et al.'s thresholds as they are
    assert (g["many"], g["medium"], g["few"]) == ([0, 1], [2, 3], [4, 5]) and g["scale"] == 1.0
    g = shot_groups([5000, 150])  # CIFAR-10-LT: not scaled up
    assert g["many_above"] == 100 and g["many"] == [0, 1]
    g = shot_groups([125, 26, 25, 5, 4])  # digits-sized: scale 0.25 -> many > 25, few < 5
    assert g["scale"] == 0.25 and (g["many"], g["medium"], g["few"]) == ([0, 1], [2, 3], [4])


def test_many_medium_few_accuracy_is_sklearns_recall_averaged_per_group():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    m = classification_metrics(y_true, y_pred, 5, [3, 4], train_counts=[125, 26, 25, 5, 4])
    recall = recall_score(y_true, y_pred, average=None, labels=range(5))
    assert m["many_acc"] == pytest.approx(recall[[0, 1]].mean())
    assert m["medium_acc"] == pytest.approx(recall[[2, 3]].mean())
    assert m["few_acc"] == pytest.approx(recall[4])
    assert m["shot_groups"]["few"] == [4]
    assert "many_acc" not in classification_metrics(y_true, y_pred, 5, [3, 4])


def test_submode_recall():
    y_true = np.array([0, 0, 0, 0, 1, 0])
    y_pred = np.array([0, 1, 0, 1, 1, 0])
    assert submode_recall(y_true, y_pred, 0, [1, 3]) == {"intra_rare_recall": 0.0, "intra_common_recall": 1.0}
    assert submode_recall(y_true, y_pred, 0, [])["intra_rare_recall"] is None


def test_intra_cells_report_submode_recall_on_test_and_on_a_validation_split(tmp_path):
    rec = run_smoke_cell("erm", tmp_path / "test", recipe="intra")
    assert rec["metrics"]["intra_rare_recall"] is not None and rec["metrics"]["intra_common_recall"] is not None
    val = run_smoke_cell("erm", tmp_path / "val", recipe="intra", grid={"validation": 0.5})
    info = val["data"]["recipe"]
    assert len(info["test_rare_index"]) >= 1  # the carved images of the rare sub-mode
    assert info["validation"]["n_val"] > max(info["test_rare_index"])


# ------------------------------------------------------------------------------------ decoupling

def _fit(method, train, epochs=10):
    from imbench.testing.classification import _tiny_model
    from imbench.tasks.classification.train import fit

    ctx = tiny_context(train, epochs=epochs)
    ctx.budget.update({"momentum": 0.9, "weight_decay": 5e-4})
    prepared = method.prepare(train, ctx)
    model = method.adapt_model(_tiny_model(train), ctx)
    fit(model, prepared, method, ctx, reference_size=len(train))
    return method.second_stage(model, ctx), ctx


def test_crt_retrains_a_reinitialised_classifier_on_a_frozen_backbone_with_class_balanced_batches():
    snapshot = {}

    class Watched(CRT):
        def on_epoch(self, epoch, ctx):
            super().on_epoch(epoch, ctx)
            if epoch == self.start_epoch(ctx.epochs):
                snapshot.update({k: v.detach().clone() for k, v in self._model.state_dict().items()})

    train = tiny_imageset(counts=COUNTS)
    model, ctx = _fit(Watched(), train)
    assert ctx.record["crt_start_epoch"] == 9
    end = model.state_dict()
    backbone = [k for k in end if not k.startswith("classifier.") and "running" not in k and "num_batches" not in k]
    assert backbone and all(torch.equal(end[k], snapshot[k]) for k in backbone)  # frozen in stage 2
    assert not torch.equal(end["classifier.weight"], snapshot["classifier.weight"])  # trained in stage 2
    # the re-initialisation is nn.Linear's, from the cell's stream: the same for the same seed
    again = {}

    class Again(Watched):
        def on_epoch(self, epoch, ctx):
            CRT.on_epoch(self, epoch, ctx)
            if epoch == self.start_epoch(ctx.epochs):
                again["w"] = self._model.classifier.weight.detach().clone()

    _fit(Again(), train)
    bound = 1 / math.sqrt(again["w"].shape[1])
    assert torch.equal(again["w"], snapshot["classifier.weight"]) and float(again["w"].abs().max()) <= bound


def test_crt_stage_two_restarts_the_lr_on_the_official_per_epoch_cosine_with_a_fresh_optimizer():
    """classifier-balancing's cls_crt: a new SGD at stage 1's base lr, CosineAnnealingLR(T, eta_min=0)
    stepped per epoch; stage 1 keeps the profile's schedule (here a step at epoch 5)."""
    from imbench.tasks.schedule import learning_rate

    trace, state = {}, {}

    class Watched(CRT):
        def on_epoch(self, epoch, ctx):
            if epoch == self.start_epoch(ctx.epochs):
                head = list(self._model.classifier.parameters())
                state["before"] = all("momentum_buffer" in ctx.optimizer.state[p] for p in head)
                super().on_epoch(epoch, ctx)
                state["after"] = any(p in ctx.optimizer.state for p in head)
            else:
                super().on_epoch(epoch, ctx)

        def lr_schedule(self, lr, epoch, step, ctx):
            out = super().lr_schedule(lr, epoch, step, ctx)
            trace.setdefault(epoch, set()).add(out)
            return out

    method = Watched(crt_start=0.6)
    train = tiny_imageset(counts=COUNTS)
    from imbench.testing.classification import _tiny_model
    from imbench.tasks.classification.train import fit

    ctx = tiny_context(train, epochs=10)
    ctx.budget.update({"momentum": 0.9, "lr_steps": {5: 0.1}})
    fit(method.adapt_model(_tiny_model(train), ctx), train, method, ctx, reference_size=len(train))
    assert state == {"before": True, "after": False}  # stage 1's momentum dropped at the switch
    assert all(len(v) == 1 for v in trace.values())  # constant within an epoch, as the official scheduler
    lr = ctx.budget["lr"]
    assert [trace[e].pop() for e in range(6)] == [learning_rate(e, ctx.budget) for e in range(6)]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    official = []
    for _ in range(4):
        official.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [trace[e].pop() for e in range(6, 10)] == pytest.approx(official, rel=1e-12)
    assert official[0] == lr  # the restart: stage 1 ended at lr x 0.1


def test_lr_schedule_is_exclusive_in_a_hybrid():
    from imbench.benchmarks.composite import composite_class

    class Warm(Method):
        name = "warm-restart"
        tracks = ("classification",)

        def lr_schedule(self, lr, epoch, step, ctx):
            return lr / 2

    parts = {"warm-restart": Warm, "crt": CRT, "ros": method_class("ros")}
    with pytest.raises(UsageError, match="lr_schedule"):
        composite_class("warm-restart+crt", parts.get)
    hybrid = composite_class("ros+warm-restart", parts.get)(**{"ros": {}, "warm-restart": {}})
    assert hybrid.lr_schedule(0.5, 0, 0, tiny_context(tiny_imageset(counts=COUNTS))) == 0.25


def test_tau_norm_rows_and_fixed_tau():
    from imbench.baselines.tau_norm import tau_normalise

    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    assert torch.allclose(tau_normalise(w, 1.0).norm(dim=1), torch.ones(2))  # τ = 1: every class the same norm
    assert torch.equal(tau_normalise(w, 0.0), w)
    train = tiny_imageset(counts=COUNTS)
    method = TauNorm(tau="0.5")
    model, ctx = _fit(method, train, epochs=3)
    assert ctx.record["tau_norm"]["tau"] == 0.5 and "tau_norm_carve" not in ctx.record
    assert float(model.classifier.bias.detach().abs().sum()) == 0.0


def test_tau_norm_auto_chooses_tau_on_its_carved_split_and_trains_without_it():
    from imbench.baselines.tau_norm import TAU_GRID

    train = tiny_imageset(counts=COUNTS)
    method = TauNorm()
    model, ctx = _fit(method, train, epochs=3)
    carve = ctx.record["tau_norm_carve"]
    assert carve["n_train"] + carve["n_val"] == len(train)
    assert carve["val_counts"] == [12, 4, 1, 1]  # max(1, round(0.2 n)), at most n - 1
    scores = ctx.record["tau_norm"]["grid_balanced_accuracy"]
    assert list(scores) == list(TAU_GRID)
    best = max(scores.values())
    assert ctx.record["tau_norm"]["tau"] == min(t for t, v in scores.items() if v == best)
