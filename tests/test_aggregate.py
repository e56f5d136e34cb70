"""Aggregation on synthetic records: hand-computed means, CIs, paired deltas, tests, ranks, flags."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imbench.results.aggregate import ci95, one_class_predicted, pivot, tidy
from imbench.results.leaderboard import COLLAPSED_NOTE, format_table, leaderboard

INFO = {"headline": "score", "metrics": ["score", "fid"], "per_class": "per_class_score",
        "lower_is_better": ["fid"], "table": ["score"]}


def record(method, seed, score, *, status="ok", recipe_ir=10, subset=0, fid=None, track="toy", family="baseline"):
    """A minimal version-2 record of a made-up track (the aggregator must name no track)."""
    config = {"track": track, "dataset": {"name": "d", "split_seed": 0, "fingerprint": "f"},
              "recipe": {"name": "longtail", "params": {"ir": float(recipe_ir)}},
              "method": {"name": method, "params": {}}, "model": "m",
              "profile": {"name": "p", "budget": {"epochs": 1}}, "subset_seed": subset, "seed": seed}
    setting = f"{method}-{recipe_ir}".ljust(16, "0")
    metrics = {} if status != "ok" else {"score": score, **({"fid_mean": fid} if fid is not None else {})}
    return {"record_version": 2, "track": track, "track_info": INFO, "config": config,
            "config_hash": f"{setting}-{seed}-{subset}", "setting_hash": setting,
            "labels": {"dataset": "d", "recipe": f"longtail(ir={recipe_ir})", "method": method, "cell": "x"},
            "model": "m", "profile": "p", "method_family": family, "seed": seed, "subset_seed": subset,
            "status": status, "error": None if status == "ok" else "RuntimeError: boom", "metrics": metrics}


ERM = [0.60, 0.62, 0.64]
A = [0.70, 0.71, 0.75]


def _rows(table, metric="score"):
    return table[table["metric"] == metric].set_index("method")


def test_means_std_and_student_t_interval_by_hand():
    recs = [record("erm", s, v) for s, v in enumerate(ERM)] + [record("a", s, v) for s, v in enumerate(A)]
    rows = _rows(tidy(recs))
    a = rows.loc["a"]
    assert a["mean"] == pytest.approx(np.mean(A))
    assert a["std"] == pytest.approx(np.std(A, ddof=1))
    half = 4.302652729911275 * np.std(A, ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert (a["ci95_lo"], a["ci95_hi"]) == (pytest.approx(np.mean(A) - half), pytest.approx(np.mean(A) + half))
    assert a["n_seeds"] == 3 and a["n_failed"] == 0 and not a["fewer_seeds"]


def test_paired_delta_and_paired_t_test_against_erm():
    recs = [record("erm", s, v) for s, v in enumerate(ERM)] + [record("a", s, v) for s, v in enumerate(A)]
    rows = _rows(tidy(recs))
    diffs = np.array(A) - np.array(ERM)
    assert rows.loc["a", "delta_vs_erm"] == pytest.approx(diffs.mean())
    assert rows.loc["a", "n_pairs"] == 3
    assert rows.loc["a", "p_vs_erm"] == pytest.approx(stats.ttest_rel(A, ERM).pvalue)
    assert rows.loc["erm", "delta_vs_erm"] == 0 and math.isnan(rows.loc["erm", "p_vs_erm"])


def test_pairs_only_where_seed_and_subset_seed_match():
    recs = [record("erm", 0, 0.5), record("erm", 1, 0.7), record("a", 1, 0.9), record("a", 2, 0.1),
            record("b", 5, 0.3, subset=1)]
    rows = _rows(tidy(recs))
    assert rows.loc["a", "n_pairs"] == 1 and rows.loc["a", "delta_vs_erm"] == pytest.approx(0.2)
    assert math.isnan(rows.loc["a", "p_vs_erm"])  # one pair: no test
    # no matching (seed, subset seed): the difference of means, flagged by n_pairs = 0
    assert rows.loc["b", "n_pairs"] == 0 and rows.loc["b", "delta_vs_erm"] == pytest.approx(0.3 - 0.6)


def test_ranks_ties_and_lower_is_better():
    recs = [record("erm", 0, 0.5, fid=9.0), record("a", 0, 0.8, fid=3.0), record("b", 0, 0.8, fid=5.0)]
    table = tidy(recs)
    assert _rows(table)["rank"].to_dict() == {"erm": 3.0, "a": 1.0, "b": 1.0}
    assert _rows(table, "fid")["rank"].to_dict() == {"erm": 3.0, "a": 1.0, "b": 2.0}


def test_the_same_values_in_another_seed_order_tie():
    """Means of the same numbers summed in another order differ by an ulp; they must still tie."""
    vals = [0.1, 0.2, 0.3]
    assert sum(vals) != sum(vals[::-1])  # the float noise this guards against
    recs = ([record("erm", s, v) for s, v in enumerate(vals)] + [record("a", s, v) for s, v in enumerate(vals[::-1])]
            + [record("b", s, 0.05) for s in range(3)])
    assert _rows(tidy(recs))["rank"].to_dict() == {"erm": 1.0, "a": 1.0, "b": 3.0}


def test_n_seeds_counts_the_values_a_metric_averages():
    """An ok cell without a value of a metric (nothing to measure) leaves that metric's mean over
    fewer seeds: n_seeds says so and fewer_seeds flags it."""
    recs = [record("erm", s, v, fid=5.0) for s, v in enumerate(ERM)] + [record("a", s, v, fid=4.0 if s else None)
                                                                      for s, v in enumerate(A)]
    table = tidy(recs)
    fid = _rows(table, "fid").loc["a"]
    assert fid["n_seeds"] == 2 and fid["fewer_seeds"] and fid["mean"] == pytest.approx(4.0)
    score = _rows(table).loc["a"]
    assert score["n_seeds"] == 3 and not score["fewer_seeds"]


def test_failed_and_fewer_seeds_are_kept_and_flagged():
    recs = ([record("erm", s, v) for s, v in enumerate(ERM)] + [record("a", 0, 0.9), record("a", 1, 0, status="failed")]
            + [record("c", 0, 0, status="failed")])
    rows = _rows(tidy(recs))
    assert rows.loc["a", "n_seeds"] == 1 and rows.loc["a", "n_failed"] == 1 and rows.loc["a", "fewer_seeds"]
    assert math.isnan(rows.loc["a", "std"]) and math.isnan(rows.loc["a", "ci95_lo"])  # single seed: no spread
    assert rows.loc["c", "n_seeds"] == 0 and rows.loc["c", "n_failed"] == 1 and math.isnan(rows.loc["c", "mean"])
    text = format_table(leaderboard(recs))
    assert "| a | 1 (1 failed) ! | 0.900 |" in text and "! fewer successful seeds" in text
    assert "0.620 ± 0.020" in text


def test_blocks_separate_recipes_and_pivot_is_methods_by_recipe():
    recs = [record(m, s, v + (0.1 if ir == 50 else 0), recipe_ir=ir)
            for ir in (10, 50) for m, vals in (("erm", ERM), ("a", A)) for s, v in enumerate(vals)]
    table = tidy(recs)
    assert table["block"].nunique() == 2
    wide = pivot(table, "score")
    assert list(wide.index) == ["a", "erm"]
    assert list(wide.columns) == ["d / longtail(ir=10)", "d / longtail(ir=50)"]
    assert wide.loc["erm", "d / longtail(ir=50)"] == pytest.approx(np.mean(ERM) + 0.1)


def test_ci95_needs_two_values():
    assert all(math.isnan(v) for v in ci95(np.array([1.0])))
    lo, hi = ci95(np.array([1.0, 3.0]))
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert pd.notna(lo)


def test_a_model_that_predicts_one_class_is_counted_and_marked_as_collapsed():
    # rows true class, columns prediction: everything predicted as class 0 on a 3-class test set
    one_class = [[50, 0, 0], [7, 0, 0], [3, 0, 0]]
    confused = [[40, 10, 0], [7, 0, 0], [3, 0, 0]]  # two classes predicted: weak, not collapsed
    assert one_class_predicted(one_class) and not one_class_predicted(confused)
    assert not one_class_predicted([[5, 0], [0, 0]])  # a one-class test set cannot tell
    assert not one_class_predicted(None) and not one_class_predicted([1, 2])
    recs = [record("erm", s, v) for s, v in enumerate(ERM)] + [record("a", s, v) for s, v in enumerate(A)]
    for r, cm in zip(recs[3:], (one_class, one_class, confused)):
        r["metrics"]["confusion_matrix"] = cm
    recs[0]["metrics"]["confusion_matrix"] = confused
    rows = _rows(tidy(recs))
    assert rows.loc["a", "collapsed_seeds"] == 2 and rows.loc["erm", "collapsed_seeds"] == 0
    text = format_table(leaderboard(recs))
    assert "| a (one class: 2/3) | 3 |" in text and "| erm | 3 |" in text
    assert text.endswith(COLLAPSED_NOTE)
    recs[3]["status"], recs[3]["metrics"] = "failed", {}  # a failed cell is not a collapsed one
    assert _rows(tidy(recs)).loc["a", "collapsed_seeds"] == 1
