"""Per-class loss weights computed from class counts (shared by the loss methods).

Both weightings give 0 to a class with no items (a recipe never produces one, but a
user-made context might) and are normalised so that the weights sum to the number of
classes ``C``, as in Cui et al. (2019) and kaidic/LDAM-DRW.
"""
from __future__ import annotations

import numpy as np
import torch


def _normalise(raw: np.ndarray) -> torch.Tensor:
    total = raw.sum()
    if total <= 0:
        raise ValueError("class counts are all zero")
    return torch.tensor(raw / total * len(raw), dtype=torch.float32)


def inverse_frequency_weights(counts) -> torch.Tensor:
    """w_c ∝ 1 / n_c, summing to C (0 for empty classes)."""
    n = np.asarray(counts, dtype=np.float64)
    return _normalise(np.divide(1.0, n, out=np.zeros_like(n), where=n > 0))


def class_balanced_weights(counts, beta: float) -> torch.Tensor:
    """Cui et al. (2019): w_c ∝ (1 − β) / (1 − β^{n_c}) (inverse effective number), summing to C.

    β = 0 gives equal weights (all 1); β → 1 approaches inverse frequency.
    """
    n = np.asarray(counts, dtype=np.float64)
    effective = 1.0 - np.power(beta, n)
    return _normalise(np.divide(1.0 - beta, effective, out=np.zeros_like(n), where=n > 0))
