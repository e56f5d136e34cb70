"""Verdicts against the training budget: learning curves, rank stability, and the budget rule.

A *curve* is the blocks of one setting that differ only in their ``budget_scale``
(``imbench run --budget-scale 0.25,0.5,1,2,4,8``). For each curve with two or more scales:

* :func:`stability` -- per scale: erm's mean, the number of methods, Kendall's tau-b between the
  methods' mean ranking at this scale and at the largest (``scipy.stats.kendalltau``, with its
  p-value), and the methods whose difference to erm changes sign against the largest scale. It
  tells a reader whether a verdict depends on when training stopped.
* :func:`budget_rule` -- the rule imbench's budgets are chosen by (README, "Budgets"): erm's
  *plateau* is its mean at the first scale after which doubling the budget gains less than
  ``PLATEAU_GAIN`` (2 %, relative) -- at every measured doubling from there on, so a flat start
  that rises later (a floor) is not taken for a plateau; the chosen budget is the smallest scale where erm reaches
  ``PLATEAU_SHARE`` (90 %) of that plateau *and* the ranking of all methods has tau >=
  ``MIN_TAU`` (0.7) against the ranking at the plateau scale. A curve whose last doubling still
  gains 2 % has no plateau: measure a larger scale.

Reads the tidy table only (``aggregate.tidy``: its ``curve`` and ``budget_scale`` columns).
"""
from __future__ import annotations

import math
import re

import pandas as pd
from scipy import stats

REFERENCE = "erm"
PLATEAU_GAIN = 0.02
PLATEAU_SHARE = 0.90
MIN_TAU = 0.7


def curve_rows(table: pd.DataFrame, headline: str) -> dict[str, pd.DataFrame]:
    """{curve: its headline rows} for the curves measured at two or more budget scales."""
    if table.empty or "curve" not in table:
        return {}
    rows = table[(table["metric"] == headline) & table["mean"].notna()]
    return {c: g for c, g in rows.groupby("curve", sort=False) if g["budget_scale"].nunique() >= 2}


def curve_title(rows: pd.DataFrame) -> str:
    """``dataset / recipe / model / profile`` of a curve, without the budget scale."""
    first = rows.sort_values("budget_scale").iloc[0]
    profile = re.sub(r",?budget_scale=[^,)]*", "", str(first["profile"])).replace("(,", "(").replace("()", "")
    return " / ".join([str(first["dataset"]), str(first["recipe"]), str(first["model"]), profile])


def means(rows: pd.DataFrame) -> pd.DataFrame:
    """Methods x budget scales of the mean."""
    return rows.pivot_table(index="method", columns="budget_scale", values="mean", aggfunc="first")


def kendall(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """(tau-b, two-sided p, n) between two methods' scores, over the methods both have."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    if len(both) < 2 or both["a"].nunique() < 2 or both["b"].nunique() < 2:
        return math.nan, math.nan, len(both)
    res = stats.kendalltau(both["a"], both["b"])
    return float(res.statistic), float(res.pvalue), len(both)


def _sign_flips(rows: pd.DataFrame, scale: float, top: float) -> list[str]:
    deltas = rows.pivot_table(index="method", columns="budget_scale", values="delta_vs_erm", aggfunc="first")
    out = []
    for method, d in deltas.iterrows():
        if method == REFERENCE:
            continue
        a, b = d.get(scale, math.nan), d.get(top, math.nan)
        if pd.notna(a) and pd.notna(b) and a * b < 0:
            out.append(f"{method} ({a:+.3f} -> {b:+.3f})")
    return out


def stability(rows: pd.DataFrame, lower_is_better: bool = False) -> pd.DataFrame:
    """One curve's rank-stability table (see the module docstring); one row per scale."""
    wide = means(rows)
    sign = -1.0 if lower_is_better else 1.0
    scales = sorted(wide.columns)
    top = scales[-1]
    erm = wide.loc[REFERENCE] if REFERENCE in wide.index else pd.Series(dtype=float)
    out = []
    for s in scales:
        tau, p, n = kendall(sign * wide[s], sign * wide[top])
        out.append({"budget_scale": s, "methods": int(wide[s].notna().sum()),
                    f"{REFERENCE} mean": float(erm.get(s, math.nan)), "largest scale": top,
                    "tau vs largest": tau, "p (tau)": p,
                    "sign of delta vs erm flips": "; ".join(_sign_flips(rows, s, top)) if s != top else ""})
    return pd.DataFrame(out).set_index("budget_scale")


def budget_rule(rows: pd.DataFrame, lower_is_better: bool = False) -> dict:
    """The budget rule on one curve: erm's plateau scale and mean, and the smallest scale that
    reaches ``PLATEAU_SHARE`` of it with tau >= ``MIN_TAU`` against the ranking at the plateau
    scale; ``chosen`` is None (with ``reason``) when no scale qualifies or there is no plateau."""
    wide = means(rows)
    scales = sorted(wide.columns)
    if REFERENCE not in wide.index:
        return {"plateau_scale": None, "chosen": None, "reason": f"no {REFERENCE} on this curve"}
    erm = wide.loc[REFERENCE]
    sign = -1.0 if lower_is_better else 1.0
    gains = {s: sign * (erm[2 * s] - erm[s]) / max(abs(erm[s]), 1e-12) for s in scales
             if 2 * s in erm.index and pd.notna(erm[s]) and pd.notna(erm[2 * s])}
    # the plateau: the first scale after which *every* measured doubling gains < 2 % -- a flat
    # start that rises later (a model that has not begun to learn) is a floor, not a plateau
    plateau = next((s for s in gains if all(g < PLATEAU_GAIN for t, g in gains.items() if t >= s)), None)
    result: dict = {"plateau_scale": plateau, "plateau_mean": None if plateau is None else float(erm[plateau]),
                    "chosen": None, "share_of_plateau": None, "tau_vs_plateau": None}
    if plateau is None:
        last = max(gains) if gains else None
        tail = f" (x{last:g} -> x{2 * last:g}: {gains[last]:+.0%})" if last is not None else ""
        result["reason"] = (f"no plateau within the measured scales: {REFERENCE} still gains >= {PLATEAU_GAIN:.0%} "
                            f"at its last doubling{tail}; measure a larger scale")
        return result
    for s in scales:
        share = erm[s] / erm[plateau] if not lower_is_better else erm[plateau] / erm[s]
        tau, _, _ = kendall(sign * wide[s], sign * wide[plateau])
        if pd.notna(share) and share >= PLATEAU_SHARE and (s == plateau or (pd.notna(tau) and tau >= MIN_TAU)):
            result.update(chosen=s, share_of_plateau=float(share), tau_vs_plateau=1.0 if s == plateau else tau)
            return result
    result["reason"] = "no scale qualifies"
    return result


def budget_tables(table: pd.DataFrame, headline: str, lower_is_better: bool = False) -> dict[str, dict]:
    """{curve title: {"stability": DataFrame, "rule": dict, "means": DataFrame}} of every curve."""
    out = {}
    for _, rows in curve_rows(table, headline).items():
        out[curve_title(rows)] = {"stability": stability(rows, lower_is_better),
                                  "rule": budget_rule(rows, lower_is_better), "means": means(rows)}
    return out
