"""Leaderboards: mean ± std over seeds per method, for each (track, dataset, recipe, model, profile).

Reads records only, never the training code. Columns: the grouping keys, ``method``,
``n_seeds``, ``n_failed``, and for each metric ``<metric>_mean`` and ``<metric>_std``
(sample std, ddof=1; 0 for a single seed; ``fid``/``kid``/``cas`` are the records' class-mean
FID, KID and CAS of generated samples, empty for methods that generate nothing), ``rank`` (by the headline metric, 1 = best) and
``<headline>_delta_erm`` (difference of means against ``erm`` in the same group).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..benchmarks.suite import recipe_label

KEYS = ["track", "dataset", "recipe", "model", "profile"]
METRICS = {
    "classification": ["balanced_accuracy", "accuracy", "macro_f1", "gmean", "tail_recall", "fid", "kid", "cas"],
}
# record metric -> leaderboard name (the generated-sample metrics are already class means)
ALIASES = {"fid_mean": "fid", "kid_mean": "kid", "cas_mean": "cas"}
HEADLINE = {"classification": "balanced_accuracy"}


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record: keys, method, seed, status and every scalar metric."""
    rows = []
    for r in records:
        row = {"track": r["track"], "dataset": r["dataset"], "recipe": recipe_label(r["recipe"]),
               "model": r["model"], "profile": r["profile"], "method": r["method"], "seed": r["seed"],
               "status": r["status"]}
        row.update({ALIASES.get(k, k): v for k, v in r.get("metrics", {}).items()
                    if isinstance(v, (int, float)) or v is None})
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard(records: list[dict]) -> pd.DataFrame:
    frame = records_frame(records)
    if frame.empty:
        return frame
    parts = []
    for track, sub in frame.groupby("track", sort=False):
        metrics = [m for m in METRICS.get(track, []) if m in sub.columns]
        ok = sub[sub["status"] == "ok"]
        ok = ok.astype({m: float for m in metrics})
        grouped = ok.groupby(KEYS + ["method"], sort=False)[metrics]
        table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).fillna(0.0).add_suffix("_std"))
        table["n_seeds"] = grouped.size()
        failed = sub[sub["status"] != "ok"].groupby(KEYS + ["method"], sort=False).size()
        table = table.join(failed.rename("n_failed"), how="outer").reset_index()
        table["n_failed"] = table["n_failed"].fillna(0).astype(int)
        table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
        head = f"{HEADLINE[track]}_mean"
        table["rank"] = table.groupby(KEYS)[head].rank(ascending=False, method="min")
        erm = table[table["method"] == "erm"].set_index(KEYS)[head]
        table[f"{HEADLINE[track]}_delta_erm"] = table[head] - table.set_index(KEYS).index.map(erm).to_numpy(dtype=float)
        cols = KEYS + ["method", "n_seeds", "n_failed", "rank", f"{HEADLINE[track]}_delta_erm"]
        cols += [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
        parts.append(table[cols].sort_values(KEYS + ["rank"], na_position="last"))
    return pd.concat(parts, ignore_index=True)


def format_table(board: pd.DataFrame, metrics: tuple[str, ...] = ("balanced_accuracy", "macro_f1", "tail_recall")) -> str:
    """A plain-text (Markdown) table: one block per group, methods ranked, mean ± std."""
    if board.empty:
        return "(no successful cells)"
    lines = []
    for key, group in board.groupby(KEYS, sort=False):
        lines.append("")
        lines.append(" / ".join(str(k) for k in key))
        header = ["rank", "method", "seeds"] + list(metrics)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for _, row in group.iterrows():
            cells = [f"{row['rank']:.0f}" if pd.notna(row["rank"]) else "-", row["method"],
                     f"{row['n_seeds']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")]
            for m in metrics:
                mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
                cells.append("-" if mean is None or pd.isna(mean) else f"{mean:.3f} ± {std:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).lstrip("\n")


def write_leaderboard(records: list[dict], out: Path) -> list[Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` into ``out``; returns their paths."""
    board = leaderboard(records)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / "leaderboard.csv", out / "leaderboard.md"
    board.to_csv(csv, index=False, float_format="%.6g")
    md.write_text(format_table(board) + "\n")
    return [csv, md]
