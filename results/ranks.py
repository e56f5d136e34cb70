"""Comparing several methods over several blocks: average ranks, Friedman, Nemenyi, CD diagrams.

The statistics follow Demšar (2006), *Statistical comparisons of classifiers over multiple data
sets*, JMLR 7:1-30, Section 3.2.2. Here a *block* is one (dataset, recipe, model, profile)
combination of a track, i.e. one row of ``scores``, and each method has one number per block:
the mean over seeds of the track's headline metric, **higher is better**. ``scores`` is a
``pandas.DataFrame`` with one row per block and one column per method; from a leaderboard it is
``board.pivot(index="block", columns="method", values="balanced_accuracy_mean")``.

Procedure (Demšar 2006):

1. Rank the methods inside each block, 1 = best, tied methods get the average of the ranks they
   span (:func:`average_ranks`, :func:`rank_table`).
2. The Friedman test needs every method in every block: :func:`complete_blocks` returns the
   complete sub-table *and* what it dropped, so a report can say so (nothing is silently
   averaged away).
3. :func:`friedman`: χ²_F = 12N/(k(k+1)) [Σ_j R_j² − k(k+1)²/4] (chi-square, k−1 df) and the
   less conservative Iman–Davenport F_F = (N−1)χ²_F / (N(k−1) − χ²_F) (F, k−1 and (k−1)(N−1)
   df), N blocks, k methods, R_j the average rank of method j.
4. If the null hypothesis (all methods equivalent) is rejected, the Nemenyi post-hoc test
   compares every pair: two methods differ when their average ranks differ by more than the
   critical difference CD = q_α √(k(k+1)/(6N)) (:func:`critical_difference`), q_α being the
   Studentized range quantile divided by √2 (:func:`q_alpha`; q_0.05 = 2.569 for k = 4 as in
   Demšar's Table 5a). :func:`nemenyi` gives the pairwise p-values, :func:`separated_pairs`
   the pairs further apart than CD and :func:`cd_diagram` draws the critical-difference diagram.
   The two agree: a Nemenyi p-value is below α exactly when the rank difference exceeds the CD
   at that α.

Caveats, as in the paper: with few blocks the tests have little power (Demšar's own example,
N = 14, k = 4, rejects with Friedman but finds no pair apart at α = 0.05); the Nemenyi test is
conservative; the blocks should be independent (several recipes of one dataset are not fully
independent, so read the p-values as a guide, not as an exact error rate).

Ties and SciPy. Demšar's χ²_F has no correction for ties; ``scipy.stats.friedmanchisquare``
divides the same statistic by C = 1 − Σ_blocks Σ_tie-groups (t³ − t) / (N k (k² − 1)) (t the
size of a tie group), so with ties SciPy's value is larger (Demšar's example: 9.28 here, 10.23
in SciPy). :func:`friedman` returns both: ``chi2_f`` (Demšar, used for the p-value and for F_F,
so the numbers match the paper) and ``chi2_f_tie_corrected`` (equal to SciPy's, which also needs
k ≥ 3; without ties both are equal).

Why scikit-posthocs (MIT, maintained) and not autorank (Apache-2.0): scikit-posthocs exposes the
two pieces separately — ``posthoc_nemenyi_friedman`` (blocks as rows, methods as columns: the
orientation of ``scores``) and ``critical_difference_diagram(ranks, sig_matrix)`` — so this
module keeps control of which test runs, of the rank direction (higher score = better = rank 1)
and of incomplete blocks, which it reports instead of hiding. autorank decides the test itself
(normality / homoscedasticity checks may switch it to ANOVA + Tukey HSD), needs at least 5
blocks and a table without NaN, and reports through its own text; a small suite (2-4 blocks) or
a partly failed run would simply not be analysable with it. Orange dropped its CD plot in 2022.
scikit-posthocs is imported lazily (it takes about 1.5 s), so importing this module is cheap.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "average_ranks",
    "block_ranks",
    "cd_diagram",
    "complete_blocks",
    "critical_difference",
    "friedman",
    "nemenyi",
    "q_alpha",
    "rank_table",
    "separated_pairs",
]


def _as_frame(scores: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a pandas DataFrame (blocks x methods), not {type(scores).__name__}")
    if not scores.columns.is_unique:
        dup = scores.columns[scores.columns.duplicated()].unique().tolist()
        raise ValueError(f"duplicate method columns: {dup}")
    try:
        return scores.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be numeric: {exc}") from None


def _require_complete(scores: pd.DataFrame, what: str) -> None:
    if scores.isna().to_numpy().any():
        missing = scores.columns[scores.isna().any()].tolist()
        raise ValueError(f"{what} needs every method in every block; missing scores for {missing}: "
                         "call complete_blocks(scores) first and report what it dropped")


def tie_safe(values):
    """``values`` rounded to 12 significant digits, so that means of the same numbers summed in
    another order (one ulp apart) tie when ranked; NaN stays NaN. Series or DataFrame in, same out."""
    def one(v):
        return float(f"{v:.12g}") if np.isfinite(v) else v

    if isinstance(values, pd.DataFrame):
        return values.apply(lambda column: column.map(one))  # DataFrame.map needs pandas 2.1
    return values.map(one) if isinstance(values, pd.Series) else one(values)


def block_ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method inside each block (row): 1 = highest score, ties share the average
    rank (two methods tied for 2nd place both get 2.5; scores equal to 12 significant digits tie,
    see :func:`tie_safe`). A missing score (NaN) stays NaN and the block's other methods are
    ranked among themselves."""
    scores = _as_frame(scores)
    return tie_safe(scores.astype(float)).rank(axis=1, ascending=False, method="average", na_option="keep")


def average_ranks(scores: pd.DataFrame) -> pd.Series:
    """Mean rank of each method over the blocks (1 = best), sorted ascending (ties keep the
    column order).

    ``scores``: one row per block, one column per method, higher is better. A method missing
    from a block (NaN) is averaged over the blocks where it has a score, and the others are
    ranked among fewer methods there, so averages over incomplete tables are not comparable:
    for the tests and the CD diagram use :func:`complete_blocks` first.
    """
    ranks = block_ranks(scores).mean(axis=0, skipna=True)
    ranks.name = "average_rank"
    ranks.index.name = "method"
    return ranks.sort_values(kind="mergesort")


def complete_blocks(scores: pd.DataFrame) -> tuple[pd.DataFrame, list, list]:
    """The largest simple complete sub-table for the Friedman test, and what was dropped.

    Rule: (1) drop every method whose score is missing (NaN) in **half or more** of the blocks
    (a method run on few blocks would otherwise remove most blocks: with two blocks, a method
    run on one of them goes, not the other block); (2) then drop every block in which any
    remaining method is missing. Returns ``(complete, dropped_blocks, dropped_methods)``, the
    two lists in the table's order, so the caller can report them; an empty table drops nothing.
    """
    scores = _as_frame(scores)
    n = len(scores)
    missing_share = scores.isna().sum(axis=0) / n if n else pd.Series(0.0, index=scores.columns)
    dropped_methods = [m for m in scores.columns if missing_share[m] >= 0.5]
    kept = scores.drop(columns=dropped_methods)
    incomplete = kept.isna().any(axis=1) if kept.shape[1] else pd.Series(True, index=kept.index)
    dropped_blocks = kept.index[incomplete].tolist()
    return kept.loc[~incomplete], dropped_blocks, dropped_methods


def friedman(scores: pd.DataFrame) -> dict:
    """Friedman test and its Iman–Davenport correction (Demšar 2006, eqs. in Section 3.2.2).

    ``scores`` must be complete (see :func:`complete_blocks`; a NaN raises ``ValueError``).
    Returns a dict with ``n_blocks`` (N), ``n_methods`` (k), ``average_ranks`` (method ->
    rank), ``chi2_f``, ``chi2_f_df`` (k−1), ``chi2_f_pvalue``, ``chi2_f_tie_corrected`` (SciPy's
    ``friedmanchisquare`` value; NaN when every block is a complete tie), ``f_f``, ``f_f_df``
    ((k−1, (k−1)(N−1))), ``f_f_pvalue`` and ``reason`` (None when the test ran). With k < 2 or
    N < 2 every statistic is None and ``reason`` says why. When all blocks rank the methods
    identically χ²_F reaches its maximum N(k−1) and F_F is infinite (p = 0).
    """
    scores = _as_frame(scores)
    _require_complete(scores, "the Friedman test")
    n, k = scores.shape
    out = {"n_blocks": n, "n_methods": k, "average_ranks": None, "chi2_f": None, "chi2_f_df": None,
           "chi2_f_pvalue": None, "chi2_f_tie_corrected": None, "f_f": None, "f_f_df": None,
           "f_f_pvalue": None, "reason": None}
    if k < 2:
        out["reason"] = f"needs at least 2 methods, got {k}"
        return out
    if n < 2:
        out["reason"] = f"needs at least 2 complete blocks, got {n}"
        return out
    ranks = block_ranks(scores)
    r = ranks.mean(axis=0).to_numpy()
    chi2 = 12.0 * n / (k * (k + 1)) * (float(np.sum(r ** 2)) - k * (k + 1) ** 2 / 4.0)
    chi2 = max(chi2, 0.0)  # rounding can give -1e-15 when everything ties
    # tie correction of scipy.stats.friedmanchisquare
    ties = 0.0
    for row in ranks.to_numpy():
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts ** 3 - counts))
    c = 1.0 - ties / (n * k * (k * k - 1))
    chi2_tc = chi2 / c if c > 1e-12 else float("nan")
    denom = n * (k - 1) - chi2
    if denom <= 1e-12 * n * (k - 1):
        f_f, f_p = math.inf, 0.0
    else:
        f_f = (n - 1) * chi2 / denom
        f_p = float(stats.f.sf(f_f, k - 1, (k - 1) * (n - 1)))
    out.update(average_ranks={m: float(v) for m, v in zip(scores.columns, r)}, chi2_f=float(chi2),
               chi2_f_df=k - 1, chi2_f_pvalue=float(stats.chi2.sf(chi2, k - 1)),
               chi2_f_tie_corrected=float(chi2_tc), f_f=float(f_f), f_f_df=(k - 1, (k - 1) * (n - 1)),
               f_f_pvalue=f_p)
    return out


def q_alpha(k: int, alpha: float = 0.05) -> float:
    """Critical value of the two-tailed Nemenyi test for k methods: the (1−α) quantile of the
    Studentized range with k groups and infinite df, divided by √2 (Demšar's Table 5a)."""
    if int(k) != k or k < 2:
        raise ValueError(f"the Nemenyi test needs at least 2 methods, got k={k}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(stats.studentized_range.ppf(1.0 - alpha, int(k), np.inf) / math.sqrt(2.0))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference CD = q_α √(k(k+1)/(6N)) for k methods over N blocks."""
    if int(n) != n or n < 1:
        raise ValueError(f"needs at least 1 block, got n={n}")
    return q_alpha(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def nemenyi(scores: pd.DataFrame) -> pd.DataFrame:
    """Pairwise p-values of the Nemenyi post-hoc test (k x k, symmetric, 1 on the diagonal,
    index and columns = methods in the table's order), from
    ``scikit_posthocs.posthoc_nemenyi_friedman``.

    That function takes a block design with **blocks as rows and methods as columns** (the
    orientation of ``scores``) and ranks each row in ascending order; the p-values depend only
    on absolute differences of average ranks, so they are the same as for our "higher is
    better" ranks. ``scores`` must be complete (:func:`complete_blocks`), with k ≥ 2 and N ≥ 2.
    """
    import scikit_posthocs as sp

    scores = _as_frame(scores)
    _require_complete(scores, "the Nemenyi test")
    n, k = scores.shape
    if k < 2 or n < 2:
        raise ValueError(f"the Nemenyi test needs at least 2 methods and 2 blocks, got k={k}, N={n}")
    p = sp.posthoc_nemenyi_friedman(tie_safe(scores.astype(float)))  # ties as block_ranks sees them
    p = p.loc[list(scores.columns), list(scores.columns)].astype(float)
    p.index.name = None
    p.columns.name = None
    return p


def separated_pairs(avg_ranks: pd.Series, cd: float) -> list[tuple[str, str, float]]:
    """The method pairs whose average ranks differ by more than ``cd``: ``(better, worse,
    difference)`` with ``better`` the lower (better) average rank, largest difference first.
    These are the pairs a CD diagram shows as different (no crossbar joins them). Demšar's
    wording is "at least CD"; an exact tie with a real-valued CD has no practical weight, and
    "more than" matches the p-values (p < α ⟺ difference > CD)."""
    ranks = pd.Series(avg_ranks, dtype=float).sort_values(kind="mergesort")
    names, values = list(ranks.index), ranks.to_numpy()
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            diff = float(values[j] - values[i])
            if diff > cd:
                pairs.append((names[i], names[j], diff))
    return sorted(pairs, key=lambda t: -t[2])


def cd_diagram(avg_ranks: pd.Series, pvalues: pd.DataFrame, path_stem: Path | str, title: str = "",
               *, alpha: float = 0.05, n_blocks: int | None = None, cd: float | None = None) -> list[Path]:
    """Draw the critical-difference diagram and save it as ``path_stem``.png and .svg.

    ``avg_ranks``: method -> average rank (:func:`average_ranks` of the complete table);
    ``pvalues``: the :func:`nemenyi` matrix of the same table. Methods are placed on the rank
    axis (1 = best, on the left); a thick bar joins methods that are *not* significantly
    different at ``alpha`` (``scikit_posthocs.critical_difference_diagram``). The CD is drawn as
    a bar from rank 1 above the axis and written in the subtitle when known: pass ``cd`` or ``n_blocks``
    (then CD = :func:`critical_difference` (k, n_blocks, alpha)).

    The figure is a bare ``matplotlib.figure.Figure`` (no pyplot state, no backend switch: the
    process's backend is left as it is; PNG is rendered by Agg, SVG by the SVG backend), so it
    needs no closing and is freed with this function's frame. Returns ``[png, svg]``.
    """
    import scikit_posthocs as sp
    from matplotlib.figure import Figure

    ranks = pd.Series(avg_ranks, dtype=float).sort_values(kind="mergesort")
    methods = list(ranks.index)
    k = len(methods)
    if k < 2:
        raise ValueError(f"a CD diagram needs at least 2 methods, got {k}")
    missing = [m for m in methods if m not in pvalues.index or m not in pvalues.columns]
    if missing:
        raise ValueError(f"methods without p-values: {missing}")
    pvals = pvalues.loc[methods, methods].astype(float)
    if cd is None and n_blocks is not None:
        cd = critical_difference(k, n_blocks, alpha)

    longest = max(len(str(m)) for m in methods)
    width = min(14.0, max(6.5, 0.6 * k + 0.2 * longest))
    fontsize = 11 if k <= 12 else 9
    fig = Figure(figsize=(width, 3.0), layout="constrained")
    ax = fig.subplots()
    sp.critical_difference_diagram(
        ranks, pvals, alpha=alpha, ax=ax,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
        label_props={"fontsize": fontsize}, marker_props={"s": 30},
        elbow_props={"linewidth": 1.2}, crossbar_props={"linewidth": 3, "alpha": 0.8},
        text_h_margin=0.15)
    # the whole rank scale 1..k, as in Demšar's diagrams, with integer ticks
    lo, hi = min(1.0, float(ranks.min())), max(float(k), float(ranks.max()))
    ax.set_xlim(lo - 0.05, hi + 0.05)
    ax.set_xticks(np.arange(1, k + 1))
    ax.tick_params(axis="x", labelsize=fontsize)
    ymin, ymax = ax.get_ylim()
    ymin, ymax = ymin - 0.4, max(ymax, 0.5)
    if cd is not None:
        # the CD as a bar from rank 1, above the tick labels (Demšar's layout; scikit-posthocs'
        # own CD bar would sit on the tick labels)
        y = 1.5
        ax.plot([lo, lo + cd], [y, y], color="k", linewidth=1.5, solid_capstyle="butt", clip_on=False)
        ax.plot([lo, lo], [y - 0.15, y + 0.15], color="k", linewidth=1.5, clip_on=False)
        ax.plot([lo + cd, lo + cd], [y - 0.15, y + 0.15], color="k", linewidth=1.5, clip_on=False)
        ax.text(lo + cd / 2, y + 0.25, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=fontsize)
        ymax = y + 1.2
    ax.set_ylim(ymin, ymax)
    # one label row (or crossbar level) is one unit of y: size the height by the rows drawn
    fig.set_size_inches(width, 0.9 + 0.3 * (ymax - ymin))
    sub = f"Nemenyi test, α = {alpha:g}: methods joined by a bar are not significantly different"
    if cd is not None:
        sub += f"\nrank 1 = best; CD = {cd:.3f}" + (f" (k = {k}, N = {n_blocks})" if n_blocks is not None else "")
    else:
        sub += "\nrank 1 = best"
    fig.suptitle(f"{title}\n{sub}" if title else sub, fontsize=fontsize)

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    fig.clear()
    return paths


def rank_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Columns ``method, average_rank, n_blocks`` (blocks where the method has a score), best
    first. On an incomplete table the ranks are taken among the methods present in each block
    (see :func:`average_ranks`); for a fair table pass ``complete_blocks(scores)[0]``."""
    scores = _as_frame(scores)
    ranks = average_ranks(scores)
    counts = scores.notna().sum(axis=0)
    return pd.DataFrame({"method": list(ranks.index), "average_rank": ranks.to_numpy(),
                         "n_blocks": [int(counts[m]) for m in ranks.index]})
