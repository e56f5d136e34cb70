"""imbalanced-learn glue shared by the resampling methods (ROS/RUS and the SMOTE family).

* ``resample_indices`` — random over-/under-sampling on an index column
  (``X = arange(N)[:, None]``): the images are then gathered with ``ImageSet.subset``, which
  is exact and much faster than resampling pixels (valid because ROS/RUS only pick items).
* ``synthesise`` — the SMOTE family on ``ImageSet.flat()`` (imbalanced-learn needs 2-D X),
  reshaped back with ``from_flat``. imbalanced-learn appends new rows after the originals,
  so the originals keep their order and values and only the appended rows are flagged
  synthetic. Every class is brought up to the largest count. Rules for small classes:

  - ``k`` (the neighbour count) must be smaller than every resampled class: when the
    smallest class with ≥ 2 items has n ≤ k items, ``k = n − 1`` is used instead and the
    record gets ``k_neighbors_used`` and ``k_neighbors_note``;
  - a class with a single item cannot be interpolated: it is randomly oversampled
    (duplicates of the real image, *not* flagged synthetic) and listed in the record under
    ``random_oversampled_classes``;
  - a class with no items stays empty.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..benchmarks.contract.context import Context

SEED_HIGH = 2**31 - 1


def _seed(ctx: Context, salt: str) -> int:
    return int(ctx.rng(salt).integers(SEED_HIGH))


def resample_indices(train, ctx: Context, sampler_cls, salt: str):
    """Apply an imbalanced-learn random sampler to the item indices; originals stay in order."""
    n = len(train)
    sampler = sampler_cls(sampling_strategy="auto", random_state=_seed(ctx, salt))
    idx, _ = sampler.fit_resample(np.arange(n)[:, None], train.labels.numpy())
    idx = idx[:, 0]
    if idx.size <= n:  # under-sampling picks a subset: keep the original order
        idx = np.sort(idx)
    out = train.subset(idx)
    ctx.note("counts_after_prepare", out.counts())
    return out


def synthesise(train, ctx: Context, salt: str, k: int,
               resample: Callable[[np.ndarray, np.ndarray, dict, int, int], tuple]):
    """Bring every class up to the largest count with ``resample(X, y, strategy, k, seed)``.

    ``strategy`` is imbalanced-learn's dict ``{class: target total}`` for the classes that can
    be interpolated (≥ 2 items); ``k`` is already adapted to their sizes.
    """
    counts = train.counts()
    target = max(counts)
    todo = [c for c, n in enumerate(counts) if 0 < n < target]
    singles = [c for c in todo if counts[c] == 1]
    multi = [c for c in todo if counts[c] >= 2]
    k_used = k
    if multi and min(counts[c] for c in multi) <= k:
        smallest = min(counts[c] for c in multi)
        k_used = smallest - 1
        ctx.note("k_neighbors_note", f"smallest resampled class has {smallest} items <= k={k}; "
                                     f"k reduced to {k_used}")
    ctx.note("k_neighbors_used", k_used)
    if singles:
        ctx.note("random_oversampled_classes", singles)

    X, y = train.flat(), train.labels.numpy()
    if multi:
        X_res, y_res = resample(X, y, {c: target for c in multi}, k_used, _seed(ctx, salt))
    else:
        X_res, y_res = X, y
    synthetic = np.concatenate([train.synthetic.numpy(), np.ones(len(y_res) - len(y), dtype=bool)])
    out = train.from_flat(X_res, y_res, synthetic)
    for c in singles:  # duplicate the one real image of the class
        i = int(np.flatnonzero(y == c)[0])
        dup = np.full(target - 1, i)
        out = out.concat(train.images[dup], train.labels[dup], synthetic=False)
    ctx.note("counts_after_prepare", out.counts())
    ctx.note("n_synthetic", int(out.synthetic.sum()) - int(train.synthetic.sum()))
    return out
