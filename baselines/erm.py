"""ERM: plain empirical risk minimisation, the no-rebalancing reference every delta is taken against."""
from __future__ import annotations

from ..benchmarks.contract.method import Method
from ..benchmarks.contract.method import register_method


@register_method
class ERM(Method):
    """No rebalancing: the training split as the recipe made it, uniform batches, the model's own
    loss (classification: plain CE; detection: the detector's loss as torchvision trains it --
    sigmoid focal, alpha 0.25, gamma 2, for FCOS and RetinaNet, softmax CE for Faster R-CNN;
    segmentation: the mean cross-entropy over labelled pixels, void ignored)."""

    name = "erm"
    family = "baseline"
    tracks = ("classification", "detection", "segmentation")
    summary = "No rebalancing: uniform sampling and plain cross-entropy (the reference row)"
    reference = "Plain empirical risk minimisation (Vapnik 1992); the 'ERM' row of Cao et al., NeurIPS 2019"
    defaults = {}
