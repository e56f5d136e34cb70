"""Borderline-SMOTE: SMOTE seeded only from minority items near the class border."""
from __future__ import annotations

from imblearn.over_sampling import BorderlineSMOTE as _BorderlineSMOTE

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract import Context, Method
from ..benchmarks.contract.method import register_method
from .resampling import synthesise

KINDS = ("borderline-1", "borderline-2")


@register_method
class BorderlineSMOTE(Method):
    """imbalanced-learn's ``BorderlineSMOTE`` on flattened pixels, target = the largest count.

    Approximate by design: only "danger" items (at least half, not all, of their
    ``m_neighbors`` nearest neighbours from other classes) seed new items. A class with danger
    items reaches the target exactly; a class without any is left as it is (listed in the
    record under ``borderline_unchanged_classes``). ``k_neighbors`` is adapted to small classes as
    in :mod:`imbench.baselines.resampling`; ``m_neighbors`` is capped at N − 1
    (``m_neighbors_used``).
    """

    name = "borderline-smote"
    family = "baseline"
    tracks = ("classification",)
    summary = "Borderline-SMOTE on pixels: SMOTE from minority items in danger near the class border"
    reference = "Han, Wang & Mao, Borderline-SMOTE, ICIC 2005 (imbalanced-learn implementation)"
    defaults = {"k_neighbors": 5, "m_neighbors": 10, "kind": "borderline-1"}

    def check(self) -> None:
        p = self.params
        if int(p["k_neighbors"]) < 1 or int(p["m_neighbors"]) < 1:
            raise UsageError(f"method 'borderline-smote': k_neighbors and m_neighbors must be >= 1, got "
                             f"{p['k_neighbors']} and {p['m_neighbors']}")
        if p["kind"] not in KINDS:
            raise UsageError(f"method 'borderline-smote': kind must be one of {', '.join(KINDS)}, got {p['kind']!r}")

    def prepare(self, train, ctx: Context):
        m = min(int(self.params["m_neighbors"]), len(train) - 1)
        ctx.note("m_neighbors_used", m)

        def resample(X, y, strategy, k, seed):
            return _BorderlineSMOTE(sampling_strategy=strategy, k_neighbors=k, m_neighbors=m,
                                    kind=self.params["kind"], random_state=seed).fit_resample(X, y)

        before = train.counts()
        out = synthesise(train, ctx, self.name, int(self.params["k_neighbors"]), resample)
        after, target = out.counts(), max(before)
        ctx.note("borderline_unchanged_classes",
                 [c for c, n in enumerate(before) if 1 < n < target and after[c] == n])
        return out
