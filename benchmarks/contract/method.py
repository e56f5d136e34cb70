"""The method contract: one class per rebalancing method, with optional hooks.

A method implements only the hooks it needs; every hook speaks the track's own data types
(for ``classification``: an :class:`~imbench.data_recipes.imageset.ImageSet` and batches
``(x, y)`` of float images in [0, 1] and int64 labels), so the same hook names serve the
detection and segmentation tracks.

========================  ==================================================================
hook                      what it changes
========================  ==================================================================
``prepare(train, ctx)``   the training set itself, before training (resampling, synthesis)
``sampler(train, ctx)``   per-item sampling weights (a float tensor (N,)) for the batches, or
                          RepeatFactors, or DeferredSampling (a switch at an epoch)
``criterion(ctx)``        the training loss: a callable ``(outputs, targets) -> scalar``
``adapt_model(m, ctx)``   the model before training (e.g. LDAM's cosine classifier)
``augment(batch, ctx)``   each training batch on the fly
``adversary(m, b, ctx)``  an extra (adversarial) loss term added to the batch loss
``on_epoch(epoch, ctx)``  schedule changes at the start of each epoch (e.g. DRW)
``lr_schedule(lr, ...)``  the learning rate of each optimizer step: ``(lr, epoch, step,
                          ctx) -> lr``, given the profile's schedule's ``lr`` at (epoch, step
                          within it): a stage with its own schedule (cRT's fresh cosine);
                          ``ctx.optimizer`` / ``ctx.steps_per_epoch`` are the loop's
``second_stage(m, ctx)``  classification: the trained model, once, before evaluation (a
                          decoupled classifier: tau-norm); returns the model to evaluate
``adjust_logits(z, ctx)`` the trained model's logits at evaluation, before the arg-max
                          (post-hoc logit adjustment): classification (N, C), segmentation
                          (N, C, H, W); the detection track does not call it, so a method
                          that overrides it cannot declare detection
========================  ==================================================================

A hook left alone keeps the track's default (identity / uniform sampling / plain loss).
What each hook receives and returns on each track is written beside the track
(``imbench.tasks.<track>``) and in the README's "The method contract" section.

``METHODS`` is the registry every method lands in: built-ins through ``@register_method``,
plugins through ``imbench.benchmarks.plugins`` (entry points, ``--plugin``).
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch

from .context import Context
from .errors import UsageError
from .registry import Registry

HOOKS = ("prepare", "sampler", "criterion", "adapt_model", "augment", "adversary", "on_epoch", "lr_schedule",
         "second_stage", "adjust_logits")


class Method:
    """Base class of every method; subclass it, set the class attributes, override hooks.

    ``defaults`` declares the method's parameters and their default values; a parameter
    given from the command line as text is converted to the default's type. Override
    ``check()`` to reject impossible values with ``UsageError``.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "baseline"  # "baseline", "gan", or "hybrid" (benchmarks.composite)
    tracks: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    # per track, the models the method can run with (e.g. ASDN needs Faster R-CNN's ROI head);
    # a track not listed takes every model
    models: ClassVar[dict[str, tuple[str, ...]]] = {}
    # raised whenever a change alters the method's results: part of every cell's identity, so a
    # record written by an earlier version is never resumed as this version's (see
    # ``imbench.benchmarks.code``; a plugin's source hash is part of the identity too)
    version: ClassVar[int] = 1

    def __init__(self, **params: Any):
        unknown_keys = sorted(set(params) - set(self.defaults))
        if unknown_keys:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UsageError(f"method {self.name!r} has no parameter {unknown_keys[0]!r} (parameters: {known})")
        self.params = {k: _coerce(self.name, k, params.get(k, v), v) for k, v in self.defaults.items()}
        self.check()

    def check(self) -> None:
        """Raise ``UsageError`` for impossible parameter values."""

    @classmethod
    def hooks(cls) -> list[str]:
        """The hooks this method overrides."""
        return [h for h in HOOKS if getattr(cls, h) is not getattr(Method, h)]

    @classmethod
    def supports(cls, track: str, model: str | None = None) -> bool:
        """Whether the method runs on ``track`` (and, when given, with ``model``)."""
        if track not in cls.tracks:
            return False
        needed = cls.models.get(track)
        return model is None or not needed or model in needed

    # ----------------------------------------------------------------- hooks
    def prepare(self, train, ctx: Context):
        return train

    def sampler(self, train, ctx: Context) -> torch.Tensor | None:
        return None

    def criterion(self, ctx: Context):
        return None

    def adapt_model(self, model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
        return model

    def augment(self, batch, ctx: Context):
        return batch

    def adversary(self, model: torch.nn.Module, batch, ctx: Context) -> torch.Tensor | None:
        return None

    def on_epoch(self, epoch: int, ctx: Context) -> None:
        return None

    def lr_schedule(self, lr: float, epoch: int, step: int, ctx: Context) -> float:
        return lr

    def second_stage(self, model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
        return model

    def adjust_logits(self, logits: torch.Tensor, ctx: Context) -> torch.Tensor:
        return logits

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _coerce(method: str, key: str, value: Any, default: Any) -> Any:
    """``value`` in the type of ``default``: command-line text is parsed, and numbers are
    normalised (``1`` for a float parameter is ``1.0``, ``2.0`` for an int one is ``2``), so
    the same setting written in YAML or on the command line is one cell."""
    if default is None or isinstance(default, str):
        return value
    if not isinstance(value, str):
        if isinstance(default, bool):
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise UsageError(f"method {method!r}: parameter {key}={value!r} is not a valid bool")
        if isinstance(value, bool):
            return value
        if isinstance(default, float) and isinstance(value, int):
            return float(value)
        if isinstance(default, int) and isinstance(value, float):
            if not value.is_integer():
                raise UsageError(f"method {method!r}: parameter {key}={value!r} is not a valid int")
            return int(value)
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return type(default)(value)
    except ValueError:
        raise UsageError(
            f"method {method!r}: parameter {key}={value!r} is not a valid {type(default).__name__}"
        ) from None


class RepeatFactors:
    """What a ``sampler`` hook may return instead of weights: per-item repeat factors ``r >= 0``
    (LVIS repeat-factor sampling). Each epoch repeats item ``i`` ``floor(r_i)`` times and once
    more with probability ``r_i - floor(r_i)`` (stochastic rounding, drawn again every epoch)."""

    def __init__(self, factors):
        self.factors = torch.as_tensor(factors, dtype=torch.float64).cpu()
        if self.factors.ndim != 1 or not torch.isfinite(self.factors).all() or (self.factors < 0).any():
            raise ValueError("repeat factors must be a finite, non-negative 1-D tensor")
        if self.factors.sum() <= 0:
            raise ValueError("repeat factors are all zero")

    def draw(self, gen: torch.Generator) -> torch.Tensor:
        """One epoch's item indices (sorted; with repeats)."""
        whole = self.factors.floor()
        extra = torch.rand(len(self.factors), generator=gen, dtype=torch.float64) < (self.factors - whole)
        counts = (whole + extra.double()).long()
        return torch.repeat_interleave(torch.arange(len(counts)), counts)


class DeferredSampling:
    """What a ``sampler`` hook may return to change the sampling during training: ``before`` (None
    for the track's uniform order, or per-item weights) for the epochs before ``start_epoch``,
    ``after`` from it on (deferred re-sampling, Cao et al. 2019). ``start_epoch`` counts the
    budget's epochs, as ``on_epoch`` does."""

    def __init__(self, before, after, start_epoch: int):
        self.before, self.after, self.start_epoch = before, after, int(start_epoch)
        if self.start_epoch < 0:
            raise ValueError(f"deferred sampling starts at epoch {start_epoch}; it must be >= 0")
        if isinstance(before, (RepeatFactors, DeferredSampling)) or isinstance(after, (RepeatFactors, DeferredSampling)):
            raise ValueError("deferred sampling switches between None and per-item weights")


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method], origin: str = "builtin") -> type[Method]:
    """Class decorator that registers a :class:`Method` subclass under ``cls.name``."""
    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise UsageError(f"{cls!r} from {origin} is not a subclass of imbench Method")
    if not cls.name:
        raise UsageError(f"method class {cls.__qualname__} from {origin} has no name")
    if not cls.tracks:
        raise UsageError(f"method {cls.name!r} from {origin} declares no tracks")
    if "detection" in cls.tracks and "adjust_logits" in cls.hooks():
        raise UsageError(f"method {cls.name!r} from {origin} overrides adjust_logits, which the detection "
                         f"track does not call; it cannot declare the detection track")
    if set(cls.tracks) - {"classification"} and "second_stage" in cls.hooks():
        raise UsageError(f"method {cls.name!r} from {origin} overrides second_stage, which only the "
                         f"classification track calls; it can declare only that track")
    return METHODS.register(cls.name, cls, origin=origin)
