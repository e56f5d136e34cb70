"""What every track's training loop shares: the learning-rate schedule, the budget units,
batching and the per-epoch sampling orders a method's ``sampler`` hook shapes."""
from __future__ import annotations

import torch

from ..benchmarks.contract.method import RepeatFactors

BUDGET_UNITS = ("steps", "epochs")


def learning_rate(epoch: int, budget: dict) -> float:
    """The learning rate of ``epoch`` (0-based): warm-up, then step multipliers."""
    base = float(budget["lr"])
    warmup = int(budget.get("warmup_epochs", 0))
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    factor = 1.0
    for start, mult in sorted((int(k), float(v)) for k, v in (budget.get("lr_steps") or {}).items()):
        if epoch >= start:
            factor = mult
    return base * factor


def batches(n: int, batch_size: int, order: torch.Tensor):
    """Split ``order`` into batches, folding a trailing batch of one item into the previous
    one (BatchNorm cannot train on a single item)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
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


def _permutation(n: int, repeat: RepeatFactors | None, gen: torch.Generator) -> torch.Tensor:
    if repeat is None:
        return torch.randperm(n, generator=gen)
    items = repeat.draw(gen)
    return items[torch.randperm(len(items), generator=gen)]


def sampling_plan(out, n: int, method: str):
    """A sampler hook's output checked: None, weights (float64 tensor (n,)) or RepeatFactors."""
    if out is None:
        return None
    if isinstance(out, RepeatFactors):
        if out.factors.shape != (n,):
            raise ValueError(f"method {method!r} returned {tuple(out.factors.shape)} repeat factors for {n} items")
        return out
    weights = torch.as_tensor(out, dtype=torch.float64).cpu()
    if weights.shape != (n,) or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"method {method!r} returned invalid sampling weights")
    return weights


