"""Leaderboards: the wide view of ``aggregate.tidy`` — one row per setting, mean ± std per metric.

A row is one *setting* (a cell without its seeds), so two configurations are never averaged
together: ``focal`` and ``focal:gamma=0.5`` are two rows, and so are runs on different data files
or budgets that share a name. Ranks and deltas against ``erm`` are taken inside a *block* (the
settings that differ only in the method). Reads records only; names no track.

Columns: ``track, dataset, recipe, model, profile, method`` (the records' short labels: non-default
parameters only; a label shared by two different settings gets ``#<hash>`` appended),
``family``, ``n_seeds`` (the seeds the headline mean is over: successful cells, seeds x subset
seeds, with a headline value), ``n_failed``, ``identical_to`` (``erm`` for a method that computed
erm's cells by construction on this block), ``undertrained`` (its generator budget is one the
profile lists as under-trained for it), ``collapsed_seeds`` (seeds whose model predicts one class on
the whole test set: :func:`collapse_mark`), ``rank`` (by the
track's headline metric, 1 = best), ``<headline>_delta_erm`` (paired by seed where possible, see
``aggregate``), then ``<metric>_mean`` / ``<metric>_std`` (sample std, ddof=1; empty for a single
seed) for the metrics the track reports, then ``setting`` / ``block`` (hash prefixes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import KEYS, tidy, track_info

UNDERTRAINED_MARK = " (under-trained generator)"
COLLAPSED_NOTE = ("(one class: k/n): on k of the n seeds the model predicts a single class for the whole test set -- "
                  "its training collapsed (README, Budgets), so the score measures the collapse, not the method")


def collapse_mark(row) -> str:
    """`` (one class: k/n)`` for a tidy / leaderboard row with collapsed seeds, else ``""``."""
    k = row.get("collapsed_seeds")
    if k is None or pd.isna(k) or int(k) == 0:
        return ""
    return f" (one class: {int(k)}/{int(row['n_seeds'])})"


def any_collapsed(frame: pd.DataFrame) -> bool:
    """Whether a tidy / leaderboard frame has a row with collapsed seeds (its table needs the legend)."""
    return "collapsed_seeds" in frame and bool((frame["collapsed_seeds"].fillna(0) > 0).any())


def is_set(flag) -> bool:
    """A boolean column's value read safely (NaN and None are not set)."""
    return isinstance(flag, (bool, np.bool_)) and bool(flag)


def leaderboard(records: list[dict], table: pd.DataFrame | None = None) -> pd.DataFrame:
    table = tidy(records) if table is None else table
    if table.empty:
        return pd.DataFrame()
    parts, shown = [], {}
    for track, sub in table.groupby("track", sort=False):
        info = track_info(records, track)
        shown[track] = info.get("table") or [info["headline"]]
        head = info["headline"]
        ids = sub.drop_duplicates("setting").set_index("setting")[KEYS + ["method", "family", "block", "n_seeds",
                                                                          "n_failed", "identical_to", "undertrained",
                                                                          "collapsed_seeds"]]
        headline = sub[sub["metric"] == head].set_index("setting")
        ids["rank"] = headline["rank"]
        ids["n_seeds"] = headline["n_seeds"]  # the seeds the headline mean is over
        ids["collapsed_seeds"] = headline["collapsed_seeds"]
        ids[f"{head}_delta_erm"] = headline["delta_vs_erm"]
        metrics = [m for m in [head, *info["metrics"]] if m in set(sub["metric"])]
        for m in dict.fromkeys(metrics):
            rows = sub[sub["metric"] == m].set_index("setting")
            ids[f"{m}_mean"] = rows["mean"]
            ids[f"{m}_std"] = rows["std"]
        ids = ids.reset_index()
        ids["setting"] = ids["setting"].str[:12]
        ids["block"] = ids["block"].str[:12]
        cols = [c for c in ids.columns if c not in ("setting", "block")] + ["setting", "block"]
        parts.append(ids[cols].sort_values(KEYS + ["block", "rank", "method"], na_position="last"))
    board = pd.concat(parts, ignore_index=True)
    board.attrs["table_metrics"] = shown  # what format_table prints per track
    return board


def format_table(board: pd.DataFrame, metrics: tuple[str, ...] | None = None) -> str:
    """A plain-text (Markdown) table per block: methods ranked, mean ± std (no std for a single
    seed; a method with fewer successful seeds than the others of its block says so)."""
    if board.empty:
        return "(no successful cells)"
    lines, flagged, copies, short, collapsed = [], False, False, False, False
    per_track = board.attrs.get("table_metrics", {})
    for key, group in board.groupby(KEYS + ["block"], sort=False):
        shown = metrics or per_track.get(key[0]) or _default_metrics(group)
        most = group["n_seeds"].max()
        lines.append("")
        lines.append(" / ".join(str(k) for k in key[:-1]))
        header = ["rank", "method", "seeds"] + list(shown)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for _, row in group.iterrows():
            seeds = f"{row['n_seeds']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
            if row["n_seeds"] < most:
                seeds += " !"
                flagged = True
            method = row["method"] + (f" (= {row['identical_to']})" if row.get("identical_to") else "")
            method += UNDERTRAINED_MARK if is_set(row.get("undertrained")) else ""
            mark = collapse_mark(row)
            method += mark
            collapsed = collapsed or bool(mark)
            copies = copies or bool(row.get("identical_to"))
            short = short or is_set(row.get("undertrained"))
            cells = [f"{row['rank']:.0f}" if pd.notna(row["rank"]) else "-", method, seeds]
            for m in shown:
                mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
                if mean is None or pd.isna(mean):
                    cells.append("-")
                else:
                    cells.append(f"{mean:.3f}" if std is None or pd.isna(std) else f"{mean:.3f} ± {std:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines).lstrip("\n")
    if flagged:
        text += "\n\n! fewer successful seeds than the others of its block"
    if copies:
        text += ("\n\n(= erm): erm's cells by construction (nothing to do on this block); shown, not counted "
                 "in the tests")
    if short:
        text += (f"\n\n{UNDERTRAINED_MARK.strip()}: at this profile's generator budget its samples were measured "
                 "well short of their quality at 4x the generator updates (README, Budgets): the row judges an "
                 "under-trained generator, not its family")
    if collapsed:
        text += "\n\n" + COLLAPSED_NOTE
    return text


def _default_metrics(group: pd.DataFrame) -> tuple[str, ...]:
    """The headline (the first ``*_mean`` column) and the next two metrics present."""
    means = [c[:-5] for c in group.columns if c.endswith("_mean") and group[c].notna().any()]
    return tuple(means[:3])


def write_leaderboard(records: list[dict], out: Path, table: pd.DataFrame | None = None) -> list[Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` into ``out``; returns their paths."""
    board = leaderboard(records, table)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / "leaderboard.csv", out / "leaderboard.md"
    board.to_csv(csv, index=False, float_format="%.6g")
    md.write_text(format_table(board) + "\n")
    return [csv, md]
