"""Leaderboards: mean ± std over seeds per setting, for each block of comparable settings.

Reads records only, never the training code. A row is one *setting* (a cell without its seeds:
``setting_hash``), so two configurations are never averaged together: ``focal`` and
``focal:gamma=0.5`` are two rows, and so are runs on different data files or budgets that share
a name. A *block* is the settings that differ only in the method (same track, data, recipe,
model and classification budget): ranks and deltas against ``erm`` are taken inside a block.

Columns: ``track, dataset, recipe, model, profile, method`` (the records' short labels: non-default
parameters only; a label shared by two different settings gets ``#<hash>`` appended, so labels
stay unique), ``family``, ``n_seeds`` (successful cells: seeds x subset seeds), ``n_failed``,
``rank`` (by the headline metric, 1 = best), ``<headline>_delta_erm`` (difference of means
against ``erm`` in the same block), then ``<metric>_mean`` / ``<metric>_std`` (sample std,
ddof=1; 0 for a single seed) and ``setting`` / ``block`` (hash prefixes). ``fid``/``kid`` are
the class-mean FID/KID of generated samples, ``gan_test`` the class-mean accuracy of the
real-data domain classifier on them (GAN-test), ``cas`` the class-mean CAS (a classifier trained
on generated images, tested on the real test split); empty for methods that generate nothing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..benchmarks.identity import config_hash, dataset_label, method_label, recipe_label, setting_hash

KEYS = ["track", "dataset", "recipe", "model", "profile"]
METRICS = {
    "classification": ["balanced_accuracy", "accuracy", "macro_f1", "gmean", "tail_recall",
                       "fid", "kid", "gan_test", "cas"],
}
# record metric -> leaderboard name (the generated-sample metrics are already class means)
ALIASES = {"fid_mean": "fid", "kid_mean": "kid", "gan_test_mean": "gan_test", "cas_mean": "cas"}
HEADLINE = {"classification": "balanced_accuracy"}


def _block_key(config: dict) -> str:
    """The setting without its method and without the generative budget."""
    budget = {k: v for k, v in config["profile"]["budget"].items() if k != "gan"}
    rest = {k: v for k, v in config.items() if k not in ("method", "seed", "subset_seed", "profile")}
    return config_hash({**rest, "profile": {"name": config["profile"]["name"], "budget": budget}})


def _labels(r: dict) -> dict:
    if "labels" in r:
        return r["labels"]
    cfg = r["config"]  # records of version 1
    return {"dataset": dataset_label(cfg["dataset"]), "recipe": recipe_label(cfg["recipe"]),
            "method": method_label(cfg["method"])}


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record: labels, setting and block keys, seeds, status and every scalar metric."""
    rows = []
    for r in records:
        names = _labels(r)
        row = {"track": r["track"], "dataset": names["dataset"], "recipe": names["recipe"],
               "model": r["model"], "profile": r["profile"], "method": names["method"],
               "family": r.get("method_family", ""),
               "setting": r.get("setting_hash") or setting_hash(r["config"]), "block": _block_key(r["config"]),
               "seed": r["seed"], "subset_seed": r.get("subset_seed", 0), "status": r["status"]}
        metrics = dict(r.get("metrics", {}))
        if r.get("record_version", 1) < 2 and "cas_mean" in metrics:  # v1 called GAN-test "cas"
            metrics["gan_test_mean"] = metrics.pop("cas_mean")
        row.update({ALIASES.get(k, k): v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return _unique_labels(frame) if not frame.empty else frame


def _unique_labels(frame: pd.DataFrame) -> pd.DataFrame:
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


def leaderboard(records: list[dict]) -> pd.DataFrame:
    frame = records_frame(records)
    if frame.empty:
        return frame
    parts = []
    for track, sub in frame.groupby("track", sort=False):
        metrics = [m for m in METRICS.get(track, []) if m in sub.columns]
        head = f"{HEADLINE[track]}_mean"
        ids = sub.drop_duplicates("setting").set_index("setting")[KEYS + ["method", "family", "block"]]
        ok = sub[sub["status"] == "ok"].astype({m: float for m in metrics})
        grouped = ok.groupby("setting", sort=False)[metrics]
        table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).fillna(0.0).add_suffix("_std"))
        table["n_seeds"] = grouped.size()
        table = ids.join(table, how="left")
        table["n_failed"] = sub[sub["status"] != "ok"].groupby("setting").size()
        table = table.reset_index()
        table["n_failed"] = table["n_failed"].fillna(0).astype(int)
        table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
        if head not in table:
            table[head] = float("nan")
        table["rank"] = table.groupby("block")[head].rank(ascending=False, method="min")
        erm = table[table["method"] == "erm"].set_index("block")[head]
        erm = erm[~erm.index.duplicated()]
        table[f"{HEADLINE[track]}_delta_erm"] = table[head] - table["block"].map(erm).to_numpy(dtype=float)
        table["setting"] = table["setting"].str[:12]
        table["block"] = table["block"].str[:12]
        cols = KEYS + ["method", "family", "n_seeds", "n_failed", "rank", f"{HEADLINE[track]}_delta_erm"]
        cols += [f"{m}_{s}" for m in metrics for s in ("mean", "std") if f"{m}_{s}" in table]
        cols += ["setting", "block"]
        parts.append(table[cols].sort_values(KEYS + ["block", "rank"], na_position="last"))
    return pd.concat(parts, ignore_index=True)


def format_table(board: pd.DataFrame, metrics: tuple[str, ...] = ("balanced_accuracy", "macro_f1", "tail_recall")) -> str:
    """A plain-text (Markdown) table: one block per group, methods ranked, mean ± std (no std
    for a single seed)."""
    if board.empty:
        return "(no successful cells)"
    lines = []
    for key, group in board.groupby(KEYS + ["block"], sort=False):
        lines.append("")
        lines.append(" / ".join(str(k) for k in key[:-1]))
        header = ["rank", "method", "seeds"] + list(metrics)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for _, row in group.iterrows():
            cells = [f"{row['rank']:.0f}" if pd.notna(row["rank"]) else "-", row["method"],
                     f"{row['n_seeds']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")]
            for m in metrics:
                mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
                if mean is None or pd.isna(mean):
                    cells.append("-")
                else:
                    cells.append(f"{mean:.3f}" if row["n_seeds"] < 2 else f"{mean:.3f} ± {std:.3f}")
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
