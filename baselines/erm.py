"""ERM: plain empirical risk minimisation, the no-rebalancing reference every delta is taken against."""
from __future__ import annotations

from ..benchmarks.contract.method import Method
from ..benchmarks.contract.method import register_method


@register_method
class ERM(Method):
    """No rebalancing: the training split as the recipe made it, uniform batches, plain CE."""

    name = "erm"
    family = "baseline"
    tracks = ("classification",)
    summary = "No rebalancing: uniform sampling and plain cross-entropy (the reference row)"
    reference = "Plain empirical risk minimisation (Vapnik 1992); the 'ERM' row of Cao et al., NeurIPS 2019"
    defaults = {}
