"""What every track's training loop shares: the learning-rate schedule, the budget units,
batching, the per-epoch sampling orders a method's ``sampler`` hook shapes, and the epoch loop
itself (:func:`epoch_plan` then :func:`train_epochs`; a track supplies how one batch becomes a
loss)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import DeferredSampling, RepeatFactors
from ..benchmarks.contract.track import DivergenceError

BUDGET_UNITS = ("steps", "epochs")
FLIP_POLICIES = ("none", "hflip", "auto")  # the protocol augmentation of the scene tracks


def flip_policy(name: str, channels: int, track: str) -> str:
    """The profile's ``augment`` of a scene track (detection, segmentation) resolved: ``auto`` is
    ``hflip`` for RGB images, ``none`` for grey digits, whose flips are other glyphs."""
    if name not in FLIP_POLICIES:
        raise ValueError(f"{track} augment must be one of {', '.join(FLIP_POLICIES)}, got {name!r}")
    if name == "auto":
        return "hflip" if channels == 3 else "none"
    return name


WARMUP_UNITS = ("steps", "epochs")


def learning_rate(epoch: int, budget: dict, step: int = 0, steps_per_epoch: int = 1) -> float:
    """The learning rate at optimizer step ``step`` (0-based, within the epoch) of ``epoch``
    (0-based): warm-up, then step multipliers, then (``lr_poly`` = power p, e.g. 0.9) the polynomial
    decay ``(1 - epoch / epochs) ** p`` -- set once per epoch, where torchvision's segmentation
    references step it every iteration.

    The warm-up is linear over the first ``warmup_epochs`` epochs: per optimizer step
    (``warmup_unit: steps``, the default; lr x (t + 1) / (warmup_epochs x steps_per_epoch) at global
    step t, as torchvision's detection references warm up per iteration), or per epoch
    (``warmup_unit: epochs``; lr x (epoch + 1) / warmup_epochs for the whole epoch, as LDAM-DRW's
    ``adjust_learning_rate`` does -- the ``paper`` classification profile)."""
    base = float(budget["lr"])
    warmup = int(budget.get("warmup_epochs", 0))
    unit = budget.get("warmup_unit", "steps")
    if unit not in WARMUP_UNITS:
        raise ValueError(f"warmup_unit must be one of {', '.join(WARMUP_UNITS)}, got {unit!r}")
    if epoch < warmup:
        if unit == "epochs":
            return base * (epoch + 1) / warmup
        total = warmup * max(int(steps_per_epoch), 1)
        return base * (epoch * max(int(steps_per_epoch), 1) + step + 1) / total
    factor = 1.0
    for start, mult in sorted((int(k), float(v)) for k, v in (budget.get("lr_steps") or {}).items()):
        if epoch >= start:
            factor = mult
    power = budget.get("lr_poly")
    if power:
        factor *= (1.0 - epoch / max(int(budget["epochs"]), 1)) ** float(power)
    return base * factor


def _starts(n: int, batch_size: int) -> list[int]:
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    return starts


def count_batches(n: int, batch_size: int) -> int:
    """How many batches :func:`batches` cuts ``n`` items into."""
    return len(_starts(n, batch_size))


def batches(n: int, batch_size: int, order: torch.Tensor):
    """Split ``order`` into batches, folding a trailing batch of one item into the previous
    one (BatchNorm cannot train on a single item)."""
    starts = _starts(n, batch_size)
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else n
        yield order[s:e]


def epoch_orders(n: int, per_epoch: int | None, weights, gen: torch.Generator):
    """Endless per-epoch index orders of ``per_epoch`` items drawn from a set of ``n``.

    Without weights: successive seeded permutations of the set, cut into epochs of
    ``per_epoch`` items (a set larger than ``per_epoch`` is walked through across epochs, a
    smaller one repeats); with weights (a tensor): ``per_epoch`` draws with replacement; with
    :class:`RepeatFactors`: successive permutations of each draw's repeated items
    (:meth:`RepeatFactors.draw`), cut the same way. When ``per_epoch == n`` each epoch is one
    permutation (one multinomial draw), as in a plain epoch loop; ``per_epoch=None`` makes each
    epoch one whole permutation (one repeat-factor draw: its length varies).
    """
    buffer = torch.empty(0, dtype=torch.int64)
    while True:
        if isinstance(weights, torch.Tensor):
            yield torch.multinomial(weights, per_epoch or n, replacement=True, generator=gen)
            continue
        if per_epoch is None:
            yield _permutation(n, weights, gen)
            continue
        while len(buffer) < per_epoch:
            buffer = torch.cat([buffer, _permutation(n, weights, gen)])
        yield buffer[:per_epoch]
        buffer = buffer[per_epoch:]


def epoch_at(fraction: float, epochs: int) -> int:
    """The first epoch (0-based) at ``fraction`` of ``epochs`` (⌊fraction · epochs⌋, robust to float
    rounding): where a deferred schedule (DRW, DRS, cRT) switches."""
    return int(math.floor(float(fraction) * epochs + 1e-9))


def plan_orders(plan: "EpochPlan", gen: torch.Generator):
    """``epoch -> that epoch's index order`` for the plan's sampling (asked once per epoch, in
    order). DeferredSampling draws its two phases from the one generator, in the order they are
    used, so a run is a function of the seed alone."""
    s = plan.sampling
    if not isinstance(s, DeferredSampling):
        orders = epoch_orders(plan.n, plan.per_epoch, s, gen)
        return lambda epoch: next(orders)
    before = epoch_orders(plan.n, plan.per_epoch, s.before, gen)
    after = epoch_orders(plan.n, plan.per_epoch, s.after, gen)
    return lambda epoch: next(after if epoch >= s.start_epoch else before)


def _permutation(n: int, repeat: RepeatFactors | None, gen: torch.Generator) -> torch.Tensor:
    if repeat is None:
        return torch.randperm(n, generator=gen)
    items = repeat.draw(gen)
    return items[torch.randperm(len(items), generator=gen)]


def sampling_plan(out, n: int, method: str):
    """A sampler hook's output checked: None, weights (float64 tensor (n,)), RepeatFactors, or
    DeferredSampling of None / weights."""
    if out is None:
        return None
    if isinstance(out, DeferredSampling):
        return DeferredSampling(sampling_plan(out.before, n, method), sampling_plan(out.after, n, method),
                                out.start_epoch)
    if isinstance(out, RepeatFactors):
        if out.factors.shape != (n,):
            raise ValueError(f"method {method!r} returned {tuple(out.factors.shape)} repeat factors for {n} items")
        return out
    weights = torch.as_tensor(out, dtype=torch.float64).cpu()
    if weights.shape != (n,) or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"method {method!r} returned invalid sampling weights")
    return weights




@dataclass
class EpochPlan:
    """The budget of one training run: ``epochs`` of ``per_epoch`` items (None: one repeat-factor
    draw each) in batches of ``batch_size``, drawn by ``sampling`` (None, weights or
    RepeatFactors) from a set of ``n``; ``scale`` is the budget scale the epoch length carries."""

    epochs: int
    batch_size: int
    unit: str
    n: int
    per_epoch: int | None
    sampling: object
    scale: float = 1.0
    reference_size: int | None = None  # the unscaled epoch length of the ``steps`` unit

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps of a nominal epoch (an epoch of one repeat-factor draw: of ``n`` items)."""
        return count_batches(self.per_epoch or self.n, self.batch_size)


def budget_scale(budget: dict) -> float:
    """The budget's ``budget_scale`` (1 when absent), checked to be a positive number."""
    try:
        scale = float(budget.get("budget_scale", 1.0))
    except (TypeError, ValueError):
        raise ValueError(f"budget_scale must be a number, got {budget.get('budget_scale')!r}") from None
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"budget_scale must be > 0, got {scale}")
    return scale


def epoch_plan(train, method: Method, ctx: Context, reference_size: int | None) -> EpochPlan:
    """The profile's budget for ``train``, and the method's ``sampler`` hook asked once.

    ``epochs`` of ``reference_size`` items each when the budget unit is ``steps`` (the track passes
    the size of the recipe's split, so every method makes the optimizer steps ``erm`` makes,
    however much ``prepare`` changed the set), or of the set itself when it is ``epochs``
    (``reference_size=None`` means the same).

    ``budget_scale`` F (``--budget-scale``) multiplies the length of every epoch -- F x the items,
    so F x the optimizer steps -- and keeps the number of epochs: the learning-rate milestones, the
    warm-up and every epoch-counting hook (DRW's deferral, asdn's stages) move with it, at the same
    fraction of training. An epoch of one repeat-factor draw (``epochs`` unit with RFS) becomes F x
    the draw's expected length."""
    budget = ctx.budget
    epochs, batch_size = int(budget["epochs"]), int(budget["batch_size"])
    unit = budget.get("budget_unit", "steps")
    if unit not in BUDGET_UNITS:
        raise ValueError(f"budget_unit must be one of {', '.join(BUDGET_UNITS)}, got {unit!r}")
    ctx.epochs = epochs
    n = len(train)
    if n < 2:
        raise ValueError(f"training set has {n} item(s); at least 2 are needed")
    per_epoch = n if unit == "epochs" or reference_size is None else int(reference_size)
    if per_epoch < 2:
        raise ValueError(f"an epoch of {per_epoch} item(s) is too short; at least 2 are needed")
    scale = budget_scale(budget)
    sampling = sampling_plan(method.sampler(train, ctx), n, method.name)
    reference = per_epoch if unit == "steps" else None
    if unit == "epochs" and isinstance(sampling, RepeatFactors):
        # an epoch is one repeat-factor draw; scaled, F x its expected length
        per_epoch = None if scale == 1 else max(2, round(float(sampling.factors.sum()) * scale))
    elif scale != 1:
        per_epoch = max(2, round(per_epoch * scale))
    return EpochPlan(epochs, batch_size, unit, n, per_epoch, sampling, scale, reference)


OPTIMIZERS = ("sgd", "adam")


def sgd(params, budget: dict) -> torch.optim.Optimizer:
    """The protocol's optimizer: the profile's ``optimizer`` (``sgd``, the default: SGD with its lr,
    momentum and weight decay; ``adam``: Adam with its lr and L2 weight decay)."""
    kind = budget.get("optimizer", "sgd")
    if kind == "adam":
        return torch.optim.Adam(params, lr=float(budget["lr"]), weight_decay=float(budget.get("weight_decay", 0.0)))
    if kind != "sgd":
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")
    return torch.optim.SGD(params, lr=float(budget["lr"]), momentum=float(budget.get("momentum", 0.9)),
                           weight_decay=float(budget.get("weight_decay", 0.0)))


def train_epochs(model: torch.nn.Module, optimizer, method: Method, ctx: Context, plan: EpochPlan,
                 batch_loss: Callable[[torch.Tensor], tuple[torch.Tensor, object, int]], *,
                 progress: bool = False, index_device="cpu") -> tuple[list[float], int, int]:
    """The epoch loop: ``on_epoch``, the learning-rate schedule (the method's ``lr_schedule`` hook
    given the profile's), then per batch of item indices
    ``batch_loss(idx) -> (loss, batch, size)`` (the track's forward), the method's ``adversary``
    term, a finite check and one optimizer step. Returns (per-epoch mean losses, optimizer steps,
    items seen)."""
    orders = plan_orders(plan, ctx.generator("batch-order"))
    history, steps, seen_total = [], 0, 0
    per_epoch_steps = plan.steps_per_epoch
    ctx.optimizer, ctx.steps_per_epoch = optimizer, per_epoch_steps
    own_schedule = "lr_schedule" in method.hooks()
    bar = tqdm(range(plan.epochs), desc="  epochs", leave=False, disable=not progress, unit="ep")
    for epoch in bar:
        ctx.epoch = epoch
        method.on_epoch(epoch, ctx)
        model.train()
        order = orders(epoch)
        total, seen = 0.0, 0
        for i, idx in enumerate(batches(len(order), plan.batch_size, order.to(index_device))):
            lr = learning_rate(epoch, ctx.budget, i, per_epoch_steps)
            if own_schedule:
                lr = float(method.lr_schedule(lr, epoch, i, ctx))
                if not (math.isfinite(lr) and lr >= 0):
                    raise ValueError(f"method {method.name!r}: lr_schedule gave learning rate {lr}")
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, batch, size = batch_loss(idx)
            extra = method.adversary(model, batch, ctx)
            if extra is not None:
                loss = loss + extra
            if not torch.isfinite(loss):
                raise DivergenceError(f"loss became {loss.item()} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * size
            seen += size
            steps += 1
        seen_total += seen
        history.append(total / max(seen, 1))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    if history and not math.isfinite(history[-1]):
        raise DivergenceError("final training loss is not finite")
    return history, steps, seen_total


def training_record(plan: EpochPlan, steps: int, seen: int, augment: str, **extra) -> dict:
    """The record's ``training`` block."""
    return {"budget_unit": plan.unit, "epochs": plan.epochs, "steps_per_epoch": steps // max(plan.epochs, 1),
            "train_steps": steps, "images_seen": seen, "train_set_size": plan.n,
            "reference_size": plan.reference_size, "augment": augment,
            **({"budget_scale": plan.scale, "epoch_length": plan.per_epoch} if plan.scale != 1 else {}), **extra}
