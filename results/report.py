"""``imbench report RUN_DIR [RUN_DIR ...]``: tables, statistics, plots and report.html from records.

Reads records only (never the training code) from one or several run directories — a grid run
in parts on several machines gives one report — and the ``commands.jsonl`` each run appends
(the commands that made it and the cells they planned: a planned cell without a record is listed
as missing). The same cell recorded in two directories counts once (an ``ok`` record wins over a
failed one, then the newest). Writes into ``--out`` (default ``<first RUN_DIR>/report``):

* ``results.csv`` — the tidy table of ``aggregate.tidy`` (one row per setting and metric: mean,
  std, n_seeds, n_failed, Student-t 95 % CI, paired delta and paired t-test p against ``erm``,
  rank, fewer_seeds);
* ``leaderboard.csv`` / ``leaderboard.md`` — the wide view (what ``imbench run`` prints);
* ``pivot_<track>.csv`` / ``.md`` — methods x dataset / recipe of the track's headline metric;
* ``ranks_<track>.csv`` / ``.md`` and ``friedman_<track>.json`` — average ranks across blocks,
  the Friedman test, Nemenyi post-hoc p-values and critical difference (``ranks.py``), and the
  CD diagram ``plots/cd_<track>.png|svg`` when there are at least 2 blocks and 2 methods;
* ``budgets_<track>.csv`` / ``.json`` — for learning curves (blocks run at several
  ``--budget-scale``): the rank stability per budget (Kendall tau against the largest budget,
  methods whose delta vs erm changes sign) and the budget rule's outcome (``budgets.py``); the rank
  tests then use each curve's largest budget only;
* ``plots/`` — PNG and SVG figures (``plots.py``); ``report.html`` — everything in one
  self-contained page (``html.py``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..benchmarks.contract.errors import UsageError
from ..benchmarks.contract.records import read_record
from .aggregate import current, pivot, tidy, track_info
from .budgets import budget_tables
from .leaderboard import COLLAPSED_NOTE, UNDERTRAINED_MARK, any_collapsed, collapse_mark, format_table, is_set, leaderboard


def load_runs(run_dirs: list[Path]) -> tuple[list[dict], list[dict], list[dict]]:
    """(records, commands, missing) of ``run_dirs``; bad input is a ``UsageError``."""
    chosen: dict[str, dict] = {}
    commands: list[dict] = []
    planned: dict[str, str] = {}
    for run in run_dirs:
        run = Path(run)
        if not (run / "records").is_dir():
            raise UsageError(f"{run} is not a run directory (no records/ folder in it)")
        for path in sorted((run / "records").glob("[!.]*.json")):  # not .tmp-* of a write in progress
            try:
                record = read_record(path)
            except (OSError, ValueError) as exc:
                raise UsageError(f"record {path} is unreadable: {exc}") from None
            key = record.get("config_hash") or path.stem
            old = chosen.get(key)
            if old is None or _better(record, old):
                chosen[key] = record
        log = run / "commands.jsonl"
        if log.exists():
            for line in log.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed run
                if isinstance(entry, dict):
                    commands.append({"run": str(run), **{k: v for k, v in entry.items() if k != "cells"}})
                    planned.update(entry.get("cells", {}))
    missing = [{"cell": label, "config_hash": h} for h, label in planned.items() if h not in chosen]
    return list(chosen.values()), commands, missing


def _better(new: dict, old: dict) -> bool:
    rank = {"ok": 1}
    return (rank.get(new["status"], 0), new.get("created", "")) > (rank.get(old["status"], 0), old.get("created", ""))


def _md(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A Markdown table: floats with ``floatfmt``, NaN as "-", integers as integers."""
    if frame.empty:
        return "(none)"
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join([frame.index.name or "", *cols]) + " |", "|" + "---|" * (len(cols) + 1)]

    def cell(v) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else format(v, floatfmt)
        return str(v)

    for idx, *values in frame.itertuples(name=None):
        lines.append("| " + " | ".join([str(idx), *map(cell, values)]) + " |")
    return "\n".join(lines)


def block_scores(table: pd.DataFrame, headline: str) -> pd.DataFrame:
    """Blocks x methods of the headline mean (one track), block labels as the index."""
    sub = table[table["metric"] == headline]
    label = sub[["dataset", "recipe", "model", "profile"]].astype(str).agg(" / ".join, axis=1)
    return sub.assign(block_label=label).pivot_table(index="block_label", columns="method", values="mean",
                                                      aggfunc="first", dropna=False)


def post_hoc_reading(friedman: dict, cd: float, k: int, n: int) -> str | None:
    """How the Nemenyi pairs may be read (Demsar 2006: post-hoc only after the Friedman test
    rejects equal ranks; F_F's p-value where there is one, else chi2_F's)."""
    p = friedman.get("f_f_pvalue")
    p = friedman.get("chi2_f_pvalue") if p is None else p
    if cd > k - 1:
        return (f"with {n} blocks the critical difference ({cd:.2f}) exceeds the largest possible rank "
                f"difference ({k - 1}): no pair can be separated; more blocks (datasets, recipes) are needed")
    if p is None:
        return None
    if p >= 0.05:
        return (f"the Friedman test does not reject equal ranks (p = {p:.3g}): the Nemenyi pairs are not read "
                "as differences (Demsar 2006)")
    return f"the Friedman test rejects equal ranks (p = {p:.3g}): the pairs the CD separates differ at 0.05"


MIN_TEST_BLOCKS = 3  # the report runs Friedman / Nemenyi from this many complete blocks


def rank_statistics(table: pd.DataFrame, headline: str, lower_is_better: bool, out: Path, track: str) -> dict:
    """Average ranks, Friedman, Nemenyi and the CD diagram of one track; files written under ``out``."""
    from . import ranks

    # erm's copies are not evidence: a method that is erm's copy in some block leaves the test
    # (only its copy cells out would leave a gap that costs the whole block for every method)
    # a learning curve's blocks are one setting trained for longer: only its largest budget is a block
    if "curve" in table and not table.empty:
        top = table.groupby("curve")["budget_scale"].transform("max")
        table = table[table["budget_scale"] == top]
    copying = sorted(set(table.loc[table["identical_to"] == "erm", "method"])) if "identical_to" in table else []
    scores = block_scores(table[~table["method"].isin(copying)], headline)
    if lower_is_better:
        scores = -scores
    complete, dropped_blocks, dropped_methods = ranks.complete_blocks(scores)
    result: dict = {"track": track, "headline": headline, "n_blocks": int(len(complete)),
                    "n_methods": int(complete.shape[1]), "dropped_blocks": list(map(str, dropped_blocks)),
                    "dropped_methods": list(map(str, dropped_methods)), "copies_of_erm": copying, "files": []}
    if complete.shape[0] < 1 or complete.shape[1] < 2:
        result["reason"] = "fewer than 2 methods with a score in every block"
        return result
    table_ranks = ranks.rank_table(complete)
    result["ranks"] = table_ranks
    if complete.shape[0] == 2:  # computable, but with 2 blocks F_F is 0 or infinite and no CD separates
        result["reason"] = "Friedman / Nemenyi not computed (needs >= 3 blocks; 2 here): ranks shown"
        return result
    result["friedman"] = ranks.friedman(complete)
    if complete.shape[0] >= MIN_TEST_BLOCKS:
        k, n = complete.shape[1], complete.shape[0]
        cd = ranks.critical_difference(k, n)
        avg = ranks.average_ranks(complete)
        result["cd"] = cd
        result["separated"] = [list(p) for p in ranks.separated_pairs(avg, cd)]
        pvalues = ranks.nemenyi(complete)
        result["nemenyi"] = pvalues
        result["files"] += ranks.cd_diagram(avg, pvalues, out / "plots" / f"cd_{track}",
                                            title=f"{track}: {headline}, {n} blocks, CD = {cd:.2f}")
        result["reading"] = post_hoc_reading(result["friedman"], cd, k, n)
    else:
        result["reason"] = "one block only: ranks shown, no Friedman / Nemenyi test across blocks"
    return result


def build_report(run_dirs: list[Path], out: Path | None = None, *, html: bool = True, plots: bool = True) -> dict:
    """Write the report of ``run_dirs`` into ``out``; returns {"out", "files", "tables", ...}."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise UsageError("imbench report needs at least one RUN_DIR")
    records, commands, missing = load_runs(run_dirs)
    records, superseded = current(records)  # records of older code for the same cells: not counted
    out = Path(out) if out is not None else run_dirs[0] / "report"
    try:
        (out / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    table = tidy(records)
    files: list[Path] = []
    results_csv = out / "results.csv"
    table.to_csv(results_csv, index=False, float_format="%.6g")
    files.append(results_csv)
    board = leaderboard(records, table)
    (out / "leaderboard.csv").write_text(board.to_csv(index=False, float_format="%.6g"))
    (out / "leaderboard.md").write_text(format_table(board) + "\n")
    files += [out / "leaderboard.csv", out / "leaderboard.md"]
    per_track: dict[str, dict] = {}
    for track in table["track"].unique():
        info = track_info(records, track)
        head = info["headline"]
        sub = table[table["track"] == track]
        wide = pivot(sub, head)
        wide.to_csv(out / f"pivot_{track}.csv", float_format="%.6g")
        (out / f"pivot_{track}.md").write_text(f"{track}: {head} (mean over seeds)\n\n{_md(wide)}\n")
        files += [out / f"pivot_{track}.csv", out / f"pivot_{track}.md"]
        stats = rank_statistics(sub, head, head in info.get("lower_is_better", []), out, track)
        files += stats["files"]
        if "ranks" in stats:
            stats["ranks"].to_csv(out / f"ranks_{track}.csv", index=False, float_format="%.6g")
            (out / f"ranks_{track}.md").write_text(_md(stats["ranks"].set_index("method")) + "\n")
            files += [out / f"ranks_{track}.csv", out / f"ranks_{track}.md"]
        summary = {k: v for k, v in stats.items() if k not in ("ranks", "nemenyi", "files")}
        if "nemenyi" in stats:
            summary["nemenyi_p"] = json.loads(stats["nemenyi"].to_json())
        (out / f"friedman_{track}.json").write_text(json.dumps(summary, indent=1, default=_plain) + "\n")
        files.append(out / f"friedman_{track}.json")
        lower = head in info.get("lower_is_better", [])
        curves = budget_tables(sub, head, lower)
        if curves:
            files += _write_budgets(out, track, curves)
        per_track[track] = {"info": info, "pivot": wide, "stats": stats, "plots": {}, "table": sub, "budgets": curves}
        if plots:
            from .plots import all_plots

            track_records = [r for r in records if r["track"] == track]
            per_track[track]["plots"] = all_plots(track_records, sub, out / "plots", info=info)
            files += [p for paths in per_track[track]["plots"].values() for p in paths]
    if html:
        files.append(_write_html(out, run_dirs, records, board, commands, missing, per_track, superseded))
    return {"out": out, "files": files, "records": records, "table": table, "board": board,
            "commands": commands, "missing": missing, "tracks": per_track, "superseded": superseded}


def _write_budgets(out: Path, track: str, curves: dict) -> list[Path]:
    """``budgets_<track>.csv`` (the rank-stability rows of every curve) and ``budgets_<track>.json``
    (the budget rule's outcome per curve)."""
    rows = [stab.reset_index().assign(curve=title) for title, part in curves.items() for stab in [part["stability"]]]
    frame = pd.concat(rows, ignore_index=True)
    frame = frame[["curve", *[c for c in frame.columns if c != "curve"]]]
    csv, js = out / f"budgets_{track}.csv", out / f"budgets_{track}.json"
    frame.to_csv(csv, index=False, float_format="%.6g")
    js.write_text(json.dumps({title: part["rule"] for title, part in curves.items()}, indent=1, default=_plain) + "\n")
    return [csv, js]


def budget_summary(rule: dict) -> dict:
    """The budget rule's outcome on one curve, for people."""
    from .budgets import MIN_TAU, PLATEAU_GAIN, PLATEAU_SHARE

    out = {"rule": (f"plateau: erm's mean at the first scale after which doubling gains < {PLATEAU_GAIN:.0%}; "
                    f"budget: the smallest scale with erm >= {PLATEAU_SHARE:.0%} of it and Kendall tau >= "
                    f"{MIN_TAU} against the ranking at the plateau")}
    if rule.get("plateau_scale") is not None:
        out["erm plateau"] = f"{rule['plateau_mean']:.4f} at x{rule['plateau_scale']:g}"
    if rule.get("chosen") is not None:
        out["chosen budget scale"] = (f"x{rule['chosen']:g} (erm at {rule['share_of_plateau']:.1%} of its plateau, "
                                      f"tau {rule['tau_vs_plateau']:.2f})")
    if rule.get("reason"):
        out["note"] = rule["reason"]
    return out


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def block_table(block: pd.DataFrame, headline: str, metrics: list[str]) -> pd.DataFrame:
    """One block of the tidy table, for people: the headline with its spread, CI, paired delta
    and p-value against erm, then the other metrics' means; best first."""
    head = block[block["metric"] == headline].set_index("setting")
    rows = []
    for setting, r in head.sort_values(["rank", "method"], na_position="last").iterrows():
        seeds = f"{r['n_seeds']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else "") + (" !" if r["fewer_seeds"] else "")
        method = r["method"] + (f" (= {r['identical_to']})" if r.get("identical_to") else "")
        method += UNDERTRAINED_MARK if is_set(r.get("undertrained")) else ""
        method += collapse_mark(r)
        row = {"rank": "–" if math.isnan(r["rank"]) else f"{r['rank']:.0f}", "method": method, "family": r["family"],
               "seeds": seeds,
               headline: _num(r["mean"]) + ("" if math.isnan(r["std"]) else f" ± {_num(r['std'])}"),
               "95 % CI": "–" if math.isnan(r["ci95_lo"]) else f"{_num(r['ci95_lo'])} – {_num(r['ci95_hi'])}",
               "Δ erm": "–" if math.isnan(r["delta_vs_erm"]) else f"{r['delta_vs_erm']:+.3f}",
               "p vs erm (paired t)": "–" if math.isnan(r["p_vs_erm"]) else f"{r['p_vs_erm']:.3g}"}
        for m in metrics:
            if m == headline:
                continue
            cell = block[(block["setting"] == setting) & (block["metric"] == m)]
            row[m] = _num(float(cell["mean"].iloc[0])) if len(cell) else "–"
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("rank")
    return frame.loc[:, (frame != "–").any(axis=0)]


def _write_html(out: Path, run_dirs, records, board, commands, missing, per_track, superseded=()) -> Path:
    from .html import write_html
    from .plots import sample_gallery

    tables: list[tuple[str, object]] = []
    plot_sections: dict[str, list] = {}
    notes = []
    if superseded:
        notes.append(f"{len(superseded)} record(s) of older method code (a raised version, an edited plugin) are "
                     "superseded by newer records of the same cells and left out of every table and test")
    for track, part in per_track.items():
        head, stats = part["info"]["headline"], part["stats"]
        prefix = f"{track}: " if len(per_track) > 1 else ""
        if any_collapsed(part["table"]):
            notes.append(f"{prefix}{COLLAPSED_NOTE}")
        tables.append((f"{prefix}{head} by method and block (mean over seeds)", part["pivot"].round(4)))
        blocks = {" / ".join(str(k) for k in key[:-1]): block_table(grp, head, part["info"].get("metrics", []))
                  for key, grp in part["table"].groupby(["dataset", "recipe", "model", "profile", "block"], sort=False)}
        tables.append((f"{prefix}leaderboard per block", blocks))
        for title, curve in (part.get("budgets") or {}).items():
            tables.append((f"{prefix}verdicts against the training budget: {title}",
                           {"means (methods x budget scale)": curve["means"].round(4),
                            "rank stability against the largest budget": curve["stability"].round(4),
                            "budget rule": budget_summary(curve["rule"])}))
        if "ranks" in stats:
            tables.append((f"{prefix}average ranks across blocks", stats["ranks"].set_index("method").round(3)))
        summary = {"blocks in the test": stats.get("n_blocks"), "methods in the test": stats.get("n_methods")}
        fried = stats.get("friedman") or {}
        for key in ("chi2_f", "chi2_f_pvalue", "f_f", "f_f_pvalue"):
            if fried.get(key) is not None:
                summary[f"Friedman {key}"] = round(float(fried[key]), 6)
        if "cd" in stats:
            summary["Nemenyi critical difference (alpha 0.05)"] = round(stats["cd"], 4)
            summary["pairs the CD separates"] = "; ".join(f"{a} > {b}" for a, b, _ in stats["separated"]) or "none"
        if stats.get("reading"):
            summary["reading"] = stats["reading"]
        for key in ("reason",):
            if stats.get(key) or fried.get(key):
                summary["note"] = stats.get(key) or fried.get(key)
        if stats.get("copies_of_erm"):
            summary["left out of the test (erm's copy in some block)"] = ", ".join(stats["copies_of_erm"])
        if stats.get("dropped_methods"):
            summary["left out of the test (missing in half or more of the blocks)"] = ", ".join(stats["dropped_methods"])
        if stats.get("dropped_blocks"):
            summary["blocks left out (a method missing there)"] = "; ".join(stats["dropped_blocks"])
        tables.append((f"{prefix}Friedman test and Nemenyi post-hoc", summary))
        cd_files = [p for p in stats["files"] if p.suffix == ".png"]
        if cd_files:
            plot_sections[f"{prefix}critical-difference diagram"] = cd_files
        for heading, paths in part["plots"].items():
            plot_sections[f"{prefix}{heading}"] = paths
    missing_rows = pd.DataFrame(missing) if missing else []
    command_lines = [c["command"] for c in commands] or None
    return write_html(out / "report.html", title="imbench report", records=records, run_dirs=[str(d) for d in run_dirs],
                      tables=tables, plots=plot_sections, missing=missing_rows, commands=command_lines,
                      gallery=sample_gallery(records), notes=notes)


def _plain(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return str(obj)
