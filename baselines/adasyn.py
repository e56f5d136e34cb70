"""ADASYN: SMOTE-like synthesis with more new items for minority items that are harder to learn."""
from __future__ import annotations

import numpy as np
from imblearn.over_sampling import ADASYN as _ADASYN
from imblearn.over_sampling import SMOTE as _SMOTE

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .resampling import synthesise


@register_method
class ADASYN(Method):
    """imbalanced-learn's ``ADASYN`` on flattened pixels, target = the largest count, class by class.

    Approximate by design: the number of new items per seed item is rounded, so a class ends
    near (not exactly at) the target. ``n_neighbors`` is ADASYN's k (used both for the
    difficulty ratio and for the interpolation) and is adapted to small classes as in
    :mod:`imbench.baselines.resampling` (recorded as ``k_neighbors_used``). A class none of whose
    items has a neighbour from another class has no difficulty to weight by (imbalanced-learn
    raises): it gets plain SMOTE with the same k instead, listed under ``adasyn_smote_fallback``.
    """

    name = "adasyn"
    family = "baseline"
    tracks = ("classification",)
    summary = "ADASYN on pixels: adaptive SMOTE that synthesises more near hard minority items"
    reference = "He, Bai, Garcia & Li, ADASYN, IJCNN 2008 (imbalanced-learn implementation)"
    defaults = {"n_neighbors": 5}

    def check(self) -> None:
        if int(self.params["n_neighbors"]) < 1:
            raise UsageError(f"method 'adasyn': n_neighbors must be >= 1, got {self.params['n_neighbors']}")

    def prepare(self, train, ctx: Context):
        fallback: list[int] = []

        def resample(X, y, strategy, k, seed):
            rng = np.random.default_rng(seed)
            parts_x, parts_y = [X], [y]
            for c, target in strategy.items():
                s = int(rng.integers(2**31 - 1))
                try:
                    xr, yr = _ADASYN(sampling_strategy={c: target}, n_neighbors=k, random_state=s).fit_resample(X, y)
                except (RuntimeError, ValueError) as exc:
                    if isinstance(exc, ValueError) and "No samples will be generated" not in str(exc):
                        raise
                    fallback.append(int(c))  # no neighbour from another class / nothing to generate
                    xr, yr = _SMOTE(sampling_strategy={c: target}, k_neighbors=k, random_state=s).fit_resample(X, y)
                parts_x.append(xr[len(X):])
                parts_y.append(yr[len(y):])
            return np.concatenate(parts_x), np.concatenate(parts_y)

        out = synthesise(train, ctx, self.name, int(self.params["n_neighbors"]), resample)
        ctx.note("adasyn_smote_fallback", fallback)
        return out
