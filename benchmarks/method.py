"""Deprecated: the method contract moved to :mod:`imbench.benchmarks.contract` (0.1 plugins
imported it from here). Import ``Method``, ``Context``, ``register_method`` from there."""
import warnings

from .contract import HOOKS, Context, DeferredSampling, Method, RepeatFactors, register_method  # noqa: F401

warnings.warn("imbench.benchmarks.method moved to imbench.benchmarks.contract", DeprecationWarning, stacklevel=2)
