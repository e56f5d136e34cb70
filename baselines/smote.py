"""SMOTE: synthetic minority items interpolated between same-class nearest neighbours."""
from __future__ import annotations

from imblearn.over_sampling import SMOTE as _SMOTE

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .resampling import synthesise


@register_method
class SMOTE(Method):
    """imbalanced-learn's ``SMOTE`` on flattened pixels; every class up to the largest count (exact).

    A new item is ``x_i + u · (x_j − x_i)``, u ~ U(0, 1), x_j one of the ``k_neighbors`` nearest
    same-class neighbours of x_i, rounded to uint8. Small classes: see
    :mod:`imbench.baselines.resampling` (k reduced to n_min − 1 and recorded; single-item
    classes randomly oversampled).
    """

    name = "smote"
    family = "baseline"
    tracks = ("classification",)
    summary = "SMOTE on pixels: interpolate between same-class nearest neighbours up to the largest count"
    reference = "Chawla, Bowyer, Hall & Kegelmeyer, SMOTE, JAIR 2002 (imbalanced-learn implementation)"
    defaults = {"k_neighbors": 5}

    def check(self) -> None:
        if int(self.params["k_neighbors"]) < 1:
            raise UsageError(f"method 'smote': k_neighbors must be >= 1, got {self.params['k_neighbors']}")

    def prepare(self, train, ctx: Context):
        def resample(X, y, strategy, k, seed):
            return _SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed).fit_resample(X, y)

        return synthesise(train, ctx, self.name, int(self.params["k_neighbors"]), resample)
