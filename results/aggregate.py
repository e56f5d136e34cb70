"""Statistics over seeds, from records only: the tidy table every table, plot and report uses.

``tidy(records)`` has one row per (track, dataset, recipe, model, profile, method, metric) —
precisely, per (setting, metric), a *setting* being a cell without its seeds — with:

* ``mean``, ``std`` (sample std, ddof = 1; NaN for a single seed: nothing is shown as 0 ± 0),
  ``n_seeds`` (the seeds the mean is over: successful cells -- training seeds x subset seeds --
  with a value of this metric), ``n_failed``;
* ``ci95_lo`` / ``ci95_hi``: the Student-t 95 % interval of the mean over seeds,
  mean ± t(0.975, n − 1) · std / √n (NaN for a single seed);
* ``delta_vs_erm``: the mean difference to ``erm`` in the same block, *paired* by
  (seed, subset seed) where both have a successful cell (``n_pairs`` of them); where no pair
  matches, the difference of the two means (``n_pairs`` = 0);
* ``p_vs_erm``: a two-sided paired t-test (``scipy.stats.ttest_rel``) over those pairs — chosen
  over Wilcoxon's signed-rank test because with the 3–5 seeds a benchmark affords, Wilcoxon's
  exact p-value cannot go below 0.25 (3 pairs) or 0.0625 (5 pairs); NaN with fewer than 2 pairs
  or when every paired difference is the same;
* ``rank`` inside the block (1 = best, ties share the best rank, means equal to 12 significant
  digits tie; lower is better for the metrics the track lists in ``lower_is_better``);
* ``fewer_seeds``: True when the mean is over fewer seeds than the most successful cells any
  setting of its block has (a failed cell, or a metric a cell could not measure, so a mean over
  fewer seeds is never silently compared with the others);
* ``undertrained``: True when the setting's generator budget is one the profile lists as
  under-trained for this method (``gan: undertrained``: measured short of its quality at 4x the
  generator updates);
* ``collapsed_seeds``: how many of the setting's successful cells predict a single class on the whole
  test set (read from the record's ``confusion_matrix``, rows true class, columns prediction, where
  the test set has several classes; classification and segmentation): a collapsed model, whose
  score says the training broke down (e.g. soft Dice's background-only collapse, README "Budgets"),
  not how good the method is;
* ``identical_to``: ``"erm"`` when every successful cell of the setting computed erm's cell by
  construction (the record's ``identical_to``: an over-sampler on a balanced block, a generator
  with nothing to generate); its ``p_vs_erm`` is NaN, and a method that is erm's copy in some
  block is left out of the rank tests across blocks (``report.rank_statistics``) -- a copy of erm
  is not evidence for or against a method -- while the tables show it.

A *block* is the settings that differ only in their method (same track, data, recipe, model and
training budget; a generative budget — the profile's ``gan`` block — belongs to the method); the
blocks that differ only in their ``budget_scale`` form one *curve* (``curve``: a learning curve,
read by ``budgets.py``);
ranks, deltas and, across blocks, the Friedman test use blocks. What a track reports comes from
the records' ``track_info`` (headline metric, metrics, per-class metric, lower-is-better
metrics), so this module names no track; records written before ``track_info``
existed (record version 1, classification only) get ``LEGACY_TRACK_INFO``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..benchmarks.contract.identity import config_hash, dataset_label, setting_hash, spec_label, without_code
from .ranks import tie_safe

KEYS = ["track", "dataset", "recipe", "model", "profile"]
LABELS = KEYS + ["method"]
# record metric -> report name (the generated-sample metrics are already class means)
ALIASES = {"fid_mean": "fid", "kid_mean": "kid", "gan_test_mean": "gan_test", "cas_mean": "cas"}
LEGACY_TRACK_INFO = {"headline": "balanced_accuracy",
                     "metrics": ["balanced_accuracy", "accuracy", "macro_f1", "gmean", "tail_recall",
                                 "fid", "kid", "gan_test", "cas"],
                     "per_class": "per_class_recall", "lower_is_better": ["fid", "kid"],
                     "table": ["balanced_accuracy", "macro_f1", "tail_recall"]}
TIDY_COLUMNS = LABELS + ["family", "setting", "block", "curve", "budget_scale", "metric", "mean", "std", "n_seeds", "n_failed",
                         "ci95_lo", "ci95_hi", "delta_vs_erm", "n_pairs", "p_vs_erm", "rank", "fewer_seeds",
                         "identical_to", "undertrained", "collapsed_seeds"]


def one_class_predicted(confusion) -> bool:
    """True when a confusion matrix (rows true class, columns prediction) has several true classes
    and every prediction in one column: the model predicts one class for everything."""
    if not isinstance(confusion, list) or not confusion or not all(isinstance(row, list) for row in confusion):
        return False
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        return False
    return int((cm.sum(1) > 0).sum()) > 1 and int((cm.sum(0) > 0).sum()) == 1


def track_info(records: list[dict], track: str) -> dict:
    for r in records:
        if r["track"] == track and r.get("track_info"):
            return r["track_info"]
    return LEGACY_TRACK_INFO


def block_key(config: dict, without: tuple[str, ...] = ()) -> str:
    """The setting without its method and without the generative budget (and without the budget
    keys named in ``without``)."""
    budget = {k: v for k, v in config["profile"]["budget"].items() if k != "gan" and k not in without}
    rest = {k: v for k, v in config.items() if k not in ("method", "seed", "subset_seed", "profile")}
    return config_hash({**rest, "profile": {"name": config["profile"]["name"], "budget": budget}})


def curve_key(config: dict) -> str:
    """The block without its budget scale: the blocks of one learning curve share it."""
    return block_key(config, without=("budget_scale",))


def _labels(r: dict) -> dict:
    if "labels" in r:
        return r["labels"]
    # records of version 1 carry no labels; the aggregator reads records only (no registry), so
    # their labels name every parameter
    cfg = r["config"]
    recipe, method = cfg["recipe"], cfg["method"]
    recipe_params = spec_label(recipe["name"], recipe["params"], {})
    return {"dataset": dataset_label(cfg["dataset"]),
            "recipe": f"{recipe['name']}({','.join(recipe_params)})" if recipe_params else recipe["name"],
            "method": ":".join([method["name"], *spec_label(method["name"], method["params"], {})])}


def current(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the records of the newest code for each cell, the superseded ones). Records of one cell
    made by other code (a raised ``version``, an edited plugin: they differ only in
    ``method.code``) stay in a run folder after ``--resume``; the statistics read the most recent
    one (``created``), so one method is never two rows competing with each other."""
    latest: dict = {}
    for r in records:
        key = config_hash(without_code(r["config"])) if isinstance(r.get("config"), dict) else id(r)
        old = latest.get(key)
        if old is None or str(r.get("created") or "") > str(old.get("created") or ""):
            latest[key] = r
    kept = {id(r) for r in latest.values()}
    return [r for r in records if id(r) in kept], [r for r in records if id(r) not in kept]


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record of the newest code (:func:`current`): labels, setting and block keys,
    seeds, status and every scalar metric."""
    records = current(records)[0]
    rows = []
    for r in records:
        names = _labels(r)
        row = {"track": r["track"], "dataset": names["dataset"], "recipe": names["recipe"],
               "model": r["model"], "profile": names.get("profile", r["profile"]), "method": names["method"],
               "family": r.get("method_family", ""),
               "setting": r.get("setting_hash") or setting_hash(r["config"]), "block": block_key(r["config"]),
               "curve": curve_key(r["config"]),
               "budget_scale": float(r["config"]["profile"]["budget"].get("budget_scale", 1.0)),
               "seed": r["seed"], "subset_seed": r.get("subset_seed", 0), "status": r["status"],
               "identical_to": r.get("identical_to") or "",
               "undertrained": bool(((r["config"]["profile"]["budget"].get("gan") or {}).get("undertrained")))}
        metrics = dict(r.get("metrics") or {})
        row["collapsed"] = r["status"] == "ok" and one_class_predicted(metrics.get("confusion_matrix"))
        if r.get("record_version", 1) < 2 and "cas_mean" in metrics:  # v1 called GAN-test "cas"
            metrics["gan_test_mean"] = metrics.pop("cas_mean")
        row.update({ALIASES.get(k, k): v for k, v in metrics.items()
                    if (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return unique_labels(frame) if not frame.empty else frame


def unique_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Append a hash prefix where one label stands for several blocks or settings."""
    frame = frame.copy()
    blocks = frame.drop_duplicates("block")
    shared = blocks[blocks.duplicated(KEYS, keep=False)]["block"]
    mask = frame["block"].isin(set(shared))
    frame.loc[mask, "dataset"] = frame.loc[mask, "dataset"] + "#" + frame.loc[mask, "block"].str[:6]
    settings = frame.drop_duplicates("setting")
    shared = settings[settings.duplicated(KEYS + ["method"], keep=False)]["setting"]
    mask = frame["setting"].isin(set(shared))
    frame.loc[mask, "method"] = frame.loc[mask, "method"] + "#" + frame.loc[mask, "setting"].str[:6]
    return frame


def ci95(values: np.ndarray) -> tuple[float, float]:
    """Student-t 95 % interval of the mean of ``values`` (NaN, NaN for fewer than 2)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(np.mean(values)), float(np.std(values, ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * sem
    return mean - half, mean + half


def paired_vs(values: pd.Series, reference: pd.Series) -> tuple[float, int, float]:
    """(delta, n_pairs, p) of ``values`` against ``reference``, both indexed by (seed, subset_seed)."""
    both = pd.concat([values.rename("a"), reference.rename("b")], axis=1, join="inner").dropna()
    n = len(both)
    if n == 0:
        return float(values.mean() - reference.mean()), 0, math.nan
    diff = (both["a"] - both["b"]).to_numpy(dtype=float)
    p = math.nan
    if n >= 2 and np.ptp(diff) > 0:
        p = float(stats.ttest_rel(both["a"].to_numpy(dtype=float), both["b"].to_numpy(dtype=float)).pvalue)
    return float(diff.mean()), n, p


def tidy(records: list[dict]) -> pd.DataFrame:
    """The tidy statistics table (see the module docstring); empty when there are no records."""
    frame = records_frame(records)
    if frame.empty:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    rows = []
    for track, sub in frame.groupby("track", sort=False):
        info = track_info(records, track)
        metrics = [m for m in info["metrics"] if m in sub.columns]
        if info["headline"] not in metrics:
            metrics.insert(0, info["headline"])
        ok = sub[sub["status"] == "ok"]
        seeds = ok.groupby("setting").size()
        most = ok.groupby("block")["setting"].apply(lambda s: int(seeds.reindex(s.unique()).max()))
        erm_setting = sub[sub["method"] == "erm"].drop_duplicates("block").set_index("block")["setting"]
        for setting, cells in sub.groupby("setting", sort=False):
            first = cells.iloc[0]
            good = cells[cells["status"] == "ok"]
            n_failed = int((cells["status"] != "ok").sum())
            # erm's cells by construction (every successful cell says so): shown, not evidence
            same = "erm" if len(good) and (good["identical_to"] == "erm").all() else ""
            for metric in metrics:
                vals = good.set_index(["seed", "subset_seed"])[metric].dropna().astype(float) \
                    if metric in good else pd.Series(dtype=float)
                if vals.empty and metric != info["headline"]:
                    continue  # a metric this method does not produce (e.g. FID of a baseline)
                lo, hi = ci95(vals.to_numpy())
                row = {k: first[k] for k in LABELS + ["family", "setting", "block", "curve", "budget_scale",
                                                      "undertrained"]}
                row.update(metric=metric, mean=float(vals.mean()) if len(vals) else math.nan,
                           std=float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                           n_seeds=int(len(vals)), n_failed=n_failed, ci95_lo=lo, ci95_hi=hi,
                           delta_vs_erm=math.nan, n_pairs=0, p_vs_erm=math.nan,
                           fewer_seeds=bool(len(vals) < most.get(first["block"], 0)), identical_to=same,
                           collapsed_seeds=int(good["collapsed"].sum()))
                ref = erm_setting.get(first["block"])
                if ref is not None and len(vals):
                    erm = ok[ok["setting"] == ref]
                    if metric in erm:
                        ref_vals = erm.set_index(["seed", "subset_seed"])[metric].dropna().astype(float)
                        if len(ref_vals):
                            row["delta_vs_erm"], row["n_pairs"], row["p_vs_erm"] = paired_vs(vals, ref_vals)
                            if setting == ref or same:
                                row["p_vs_erm"] = math.nan
                rows.append(row)
    table = pd.DataFrame(rows, columns=[c for c in TIDY_COLUMNS if c != "rank"])
    lower_all = {m for t in table["track"].unique() for m in track_info(records, t).get("lower_is_better", [])}
    table["rank"] = np.nan
    for (block, metric), idx in table.groupby(["block", "metric"]).groups.items():
        table.loc[idx, "rank"] = tie_safe(table.loc[idx, "mean"]).rank(ascending=metric in lower_all, method="min")
    return table[TIDY_COLUMNS]


def pivot(table: pd.DataFrame, headline: str) -> pd.DataFrame:
    """Methods x (dataset / recipe [/ model / profile where they vary]) of the headline mean."""
    sub = table[table["metric"] == headline]
    if sub.empty:
        return pd.DataFrame()
    parts = ["dataset", "recipe"] + [k for k in ("model", "profile") if sub[k].nunique() > 1]
    column = sub[parts].astype(str).agg(" / ".join, axis=1)
    wide = sub.assign(column=column).pivot_table(index="method", columns="column", values="mean", aggfunc="first",
                                                 dropna=False)
    wide = wide.reindex(columns=list(dict.fromkeys(column)))
    return wide.loc[wide.mean(axis=1).sort_values(ascending=False).index]
