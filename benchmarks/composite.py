"""Hybrid methods: a data-level part and an algorithm-level part run as one method.

The survey's third family combines rebalancing at the data level (resampling, synthesis) with
one at the algorithm level (a loss, a sampler). ``smote+ldam-drw`` is one composite method whose
parts' hooks run in the order written:

===============  =========================================================================
hook             how the parts combine
===============  =========================================================================
``prepare``      chained: each part's output is the next part's input
``sampler``      exclusive: at most one part may set it
``criterion``    exclusive (one training loss)
``adapt_model``  exclusive (one model change)
``augment``      chained, in order
``adversary``    summed
``on_epoch``     every part, in order
``lr_schedule``  exclusive (one learning-rate schedule)
``second_stage`` exclusive (one second stage)
``adjust_logits`` exclusive (one post-hoc correction of the logits)
===============  =========================================================================

Two parts that set the same exclusive hook are a usage error naming the clash. A part sees the
cell's context, except that once a data-level part has changed the training set, the parts
after it see the counts (``instance_counts``, ``image_counts``) of the set they train on (what they would see if that set were the
recipe's output): ``ros+class-weighted`` then weights a balanced set uniformly rather than
correcting twice. The recipe's counts stay in the record (``class_counts.recipe``) and the
counts after ``prepare`` beside them (``class_counts.trained_on``).

The order is part of the cell's identity (``ros+focal`` and ``focal+ros`` are two cells even where
they behave alike), since chained hooks run in the order written. The counts each part was given
are recorded under ``extras.hybrid_part_counts``.

Parameters are given per part, ``smote:k_neighbors=3+ldam-drw:max_m=0.3``; the composite's
``params`` is ``{part name: that part's resolved params}``. A part keeps its own random streams
(salted with its own name), so ``smote`` inside ``smote+ldam-drw`` makes the same images as
``smote`` alone for the same seed.
"""
from __future__ import annotations

import re
from typing import Any

from .contract.errors import UsageError
from .contract import HOOKS, Context, Method

EXCLUSIVE = ("sampler", "criterion", "adapt_model", "lr_schedule", "second_stage", "adjust_logits")
_SPLIT = re.compile(r"\+(?=[A-Za-z_])")  # '+' before a name: 1e+3 stays a number
_CLASSES: dict[str, type[Method]] = {}


def split_parts(text: str) -> list[str]:
    """``"smote:k_neighbors=3+ldam-drw"`` -> ``["smote:k_neighbors=3", "ldam-drw"]``."""
    return [p.strip() for p in _SPLIT.split(str(text))]


def is_composite(name: str) -> bool:
    return len(split_parts(name)) > 1


class _PartContext:
    """The cell's context with the counts of ``counts_of`` (``instance_counts``, ``image_counts``,
    ``frequency_groups``); everything else, writes included, is the cell's own."""

    def __init__(self, base: Context, counts_of: Context):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_counts", counts_of)

    def __getattr__(self, key: str) -> Any:
        if key in ("instance_counts", "image_counts", "frequency_groups"):
            return getattr(self._counts, key)
        return getattr(self._base, key)

    def __setattr__(self, key: str, value: Any) -> None:
        setattr(self._base, key, value)


class Composite(Method):
    """Base of the generated hybrid classes (see :func:`composite_class`)."""

    family = "hybrid"
    part_classes: tuple[type[Method], ...] = ()
    part_names: tuple[str, ...] = ()

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.part_names))
        if unknown:
            raise UsageError(f"hybrid {self.name!r} has no part {unknown[0]!r} (parts: {', '.join(self.part_names)})")
        for name, value in params.items():
            if not isinstance(value, dict):
                raise UsageError(f"hybrid {self.name!r}: the parameters of part {name!r} must be a mapping")
        self.parts = [cls(**params.get(name, {})) for name, cls in zip(self.part_names, self.part_classes)]
        self.params = {p.name: p.params for p in self.parts}
        self._counts: Context | None = None  # the counts of the prepared set

    @classmethod
    def hooks(cls) -> list[str]:
        used = {h for part in cls.part_classes for h in part.hooks()}
        return [h for h in HOOKS if h in used]

    def _with(self, hook: str) -> list[Method]:
        return [p for p in self.parts if hook in type(p).hooks()]

    def _ctx(self, ctx: Context):
        return ctx if self._counts is None else _PartContext(ctx, self._counts)

    # ----------------------------------------------------------------- hooks
    def prepare(self, train, ctx: Context):
        self._counts = None
        seen = {}
        for part in self._with("prepare"):
            # a real Context (a copy sharing record, metrics and source) for the data-level parts
            part_ctx = self._counts or ctx
            seen[part.name] = list(part_ctx.instance_counts)
            train = part.prepare(train, part_ctx)
            self._counts = ctx.with_counts_of(train)
        seen.update({p.name: list((self._counts or ctx).instance_counts) for p in self.parts if p.name not in seen})
        ctx.note("hybrid_part_counts", seen)  # the (instance) counts each part was given
        return train

    def sampler(self, train, ctx: Context):
        (part, *_) = self._with("sampler") or [None]
        return None if part is None else part.sampler(train, self._ctx(ctx))

    def criterion(self, ctx: Context):
        (part, *_) = self._with("criterion") or [None]
        return None if part is None else part.criterion(self._ctx(ctx))

    def adapt_model(self, model, ctx: Context):
        (part, *_) = self._with("adapt_model") or [None]
        return model if part is None else part.adapt_model(model, self._ctx(ctx))

    def augment(self, batch, ctx: Context):
        for part in self._with("augment"):
            batch = part.augment(batch, self._ctx(ctx))
        return batch

    def adversary(self, model, batch, ctx: Context):
        terms = [t for t in (p.adversary(model, batch, self._ctx(ctx)) for p in self._with("adversary"))
                 if t is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        for part in self._with("on_epoch"):
            part.on_epoch(epoch, self._ctx(ctx))

    def lr_schedule(self, lr: float, epoch: int, step: int, ctx: Context) -> float:
        (part, *_) = self._with("lr_schedule") or [None]
        return lr if part is None else part.lr_schedule(lr, epoch, step, self._ctx(ctx))

    def second_stage(self, model, ctx: Context):
        (part, *_) = self._with("second_stage") or [None]
        return model if part is None else part.second_stage(model, self._ctx(ctx))

    def adjust_logits(self, logits, ctx: Context):
        (part, *_) = self._with("adjust_logits") or [None]
        return logits if part is None else part.adjust_logits(logits, self._ctx(ctx))


def _models_of(parts, track: str):
    """The models every part that restricts them allows on ``track`` (None: no restriction)."""
    allowed = None
    for p in parts:
        needed = p.models.get(track)
        if needed:
            allowed = [m for m in (allowed if allowed is not None else needed) if m in needed]
    return allowed


def composite_class(name: str, lookup) -> type[Method]:
    """The hybrid class for ``"a+b[+c]"``; ``lookup(name)`` gives a part's class."""
    names = split_parts(name)
    key = "+".join(names)
    if key in _CLASSES and all(_CLASSES[key].part_classes[i] is lookup(n) for i, n in enumerate(names)):
        return _CLASSES[key]
    if any(not n for n in names):
        raise UsageError(f"empty part in hybrid {name!r}; write a+b")
    if len(set(names)) != len(names):
        raise UsageError(f"hybrid {name!r} names a part twice")
    parts = tuple(lookup(n) for n in names)
    for hook in EXCLUSIVE:
        owners = [p.name for p in parts if hook in p.hooks()]
        if len(owners) > 1:
            raise UsageError(f"hybrid {key!r}: {owners[0]} and {owners[1]} both set the {hook} hook; "
                             f"a hybrid can have only one part that sets it")
    tracks = tuple(t for t in parts[0].tracks if all(t in p.tracks for p in parts))
    if not tracks:
        raise UsageError(f"hybrid {key!r}: its parts share no track")
    for t in tracks:
        if _models_of(parts, t) == []:
            raise UsageError(f"hybrid {key!r}: its parts run with no common model on {t}")
    cls = type(f"Hybrid[{key}]", (Composite,), {
        "name": key, "tracks": tracks, "part_classes": parts, "part_names": tuple(names),
        "families": tuple(sorted({p.family for p in parts})),
        "summary": "hybrid: " + "; then ".join(f"{p.name} ({p.summary})" for p in parts),
        "reference": "; ".join(p.reference for p in parts if p.reference),
        "defaults": {p.name: dict(p.defaults) for p in parts},
        "models": {t: tuple(m for m in _models_of(parts, t)) for t in tracks if _models_of(parts, t) is not None},
        "__module__": __name__,
    })
    _CLASSES[key] = cls
    return cls
