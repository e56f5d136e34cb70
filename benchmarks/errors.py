"""Deprecated: ``UsageError`` moved to :mod:`imbench.benchmarks.contract` (0.1 plugins imported it
from here)."""
import warnings

from .contract.errors import UsageError, unknown  # noqa: F401

warnings.warn("imbench.benchmarks.errors moved to imbench.benchmarks.contract", DeprecationWarning, stacklevel=2)
