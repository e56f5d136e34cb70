"""The README's reference tables, generated from records committed under ``results/reference/``.

A reference set is a folder ``results/reference/<name>/`` holding ``records.jsonl.gz`` (the
records of one run, one JSON object per line, as ``imbench run`` wrote them) and
``environment.json`` (the CPU, torch version, precision, command and wall time of that run).
``python -m imbench.results.reference pack RUN_DIR NAME`` makes one from a run folder;
``python -m imbench.results.reference write README.md`` rewrites every README block between
``<!-- reference:NAME:TRACK -->`` and ``<!-- /reference:NAME:TRACK -->`` (a ``:curves`` suffix on
both: the learning-curve tables of :func:`curve_tables`; ``:shots``: the many / medium / few-shot
tables of :func:`shot_tables`) from the committed records, and
``check README.md`` exits 1 when a block differs (a test runs it).

A table has one row per method and one column per block (dataset / recipe): the headline mean
± std over seeds; ``*`` marks a difference to erm that is significant *and survives machine
drift*: paired t-test p < 0.05 and |delta| larger than the track's drift in ``DRIFT`` -- the
largest |bf16 - fp32| difference of a method's mean measured on that track (the README's parity
table), the stand-in for how far another CPU moves a number. ``=`` marks erm's copies
(``identical_to``); "(under-trained generator)" a generator budget the profile lists as
under-trained for the method; "(one class: k/n)" a cell whose model predicted a single class on k of
its n seeds (``leaderboard.collapse_mark``), explained under the table.
"""
from __future__ import annotations

import gzip
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

from .aggregate import tidy, track_info
from .leaderboard import COLLAPSED_NOTE, any_collapsed, collapse_mark

REFERENCE_DIR = Path(__file__).with_name("reference")
# largest |bf16 - fp32| difference of a method's mean over 3 seeds, per track (README, "Speed")
DRIFT = {"classification": 0.011, "detection": 0.011, "segmentation": 0.017}
BLOCK = re.compile(r"(<!-- reference:(?P<name>[\w.-]+):(?P<track>\w+)(?P<kind>:curves|:shots)? -->\n)(?P<body>.*?)"
                   r"(<!-- /reference:(?P=name):(?P=track)(?P=kind)? -->)", re.S)


def load(name: str, root: Path = REFERENCE_DIR) -> list[dict]:
    """The committed records of reference set ``name``."""
    path = Path(root) / name / "records.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def pack(run_dir: Path, name: str, environment: dict, root: Path = REFERENCE_DIR) -> Path:
    """Write the records of ``run_dir`` (and ``environment``) as reference set ``name``."""
    from ..benchmarks.contract.records import read_records

    records = read_records(Path(run_dir))
    if not records:
        raise ValueError(f"{run_dir} holds no records")
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out / "records.jsonl.gz", "wb", mtime=0) as fh:  # mtime 0: the same records, the same bytes
        for r in sorted(records, key=lambda r: r["config_hash"]):
            fh.write((json.dumps(r, sort_keys=True) + "\n").encode())
    cpus = sorted({str(r.get("cpu") or "") for r in records} - {""})
    env = {"records": len(records), "torch": sorted({(r.get("versions") or {}).get("torch") for r in records} - {None}),
           "precision": sorted({(r.get("training") or {}).get("precision", "fp32") for r in records if r.get("training")}),
           **({"cpu": cpus} if cpus else {}), **environment}
    (out / "environment.json").write_text(json.dumps(env, indent=1, sort_keys=True) + "\n")
    return out


def _cell(row: pd.Series, drift: float) -> str:
    if pd.isna(row["mean"]):
        return "–"
    text = f"{row['mean']:.3f}" + ("" if pd.isna(row["std"]) else f" ± {row['std']:.3f}")
    if row.get("identical_to"):
        return text + " ="
    p, delta = row["p_vs_erm"], row["delta_vs_erm"]
    if not pd.isna(p) and p < 0.05 and not pd.isna(delta) and abs(delta) > drift:
        text += " *"
    return text + collapse_mark(row)


def _erm_first(methods) -> list[str]:
    """``methods`` in their order, erm (where present) moved to the top: the reference row."""
    methods = list(methods)
    return (["erm"] if "erm" in methods else []) + [m for m in methods if m != "erm"]


def table(records: list[dict], track: str) -> str:
    """The Markdown reference table of ``track`` (see the module docstring)."""
    recs = [r for r in records if r["track"] == track]
    stats = tidy(recs)
    if stats.empty:
        return "(no records)\n"
    head = track_info(recs, track)["headline"]
    rows = stats[stats["metric"] == head].copy()
    varying = [k for k in ("model", "profile") if k in rows and rows[k].nunique() > 1]
    caption = ""
    if varying and rows["dataset"].nunique() == 1 and rows["recipe"].nunique() == 1:
        # one block in several settings (a select grid's optimizers): the block once, above the table
        caption = f"{rows['dataset'].iloc[0]} / {rows['recipe'].iloc[0]}:\n\n"
        rows["column"] = rows[varying].astype(str).agg(" / ".join, axis=1)
    else:  # one column per block, named by what differs between the set's blocks
        rows["column"] = rows["dataset"].astype(str) + " / " + rows["recipe"].astype(str)
        for key in varying:
            rows["column"] += " / " + rows[key].astype(str)
    drift = DRIFT.get(track, 0.0)
    rows["text"] = rows.apply(lambda r: _cell(r, drift), axis=1)
    wide = rows.pivot_table(index="method", columns="column", values="text", aggfunc="first")
    order = _erm_first(rows.groupby("method")["mean"].mean().sort_values(ascending=False).index)
    columns = list(dict.fromkeys(rows["column"]))
    wide = wide.reindex(index=[m for m in order if m in wide.index], columns=sorted(columns) if caption else columns)
    short = set(rows.loc[rows["undertrained"].fillna(False).astype(bool), "method"]) if "undertrained" in rows else set()
    lines = [f"{caption}| method | {' | '.join(wide.columns)} |", "|---|" + "---|" * len(wide.columns)]
    for method, values in wide.iterrows():
        name = f"`{method}`" + (" (under-trained generator)" if method in short else "")
        lines.append(f"| {name} | " + " | ".join("" if (isinstance(v, float) and math.isnan(v)) else str(v)
                                                     for v in values) + " |")
    return "\n".join(lines) + "\n" + _collapse_legend(rows)


def _collapse_legend(rows: pd.DataFrame) -> str:
    """The legend of the "(one class: k/n)" mark, where a table shows one."""
    return f"\n{COLLAPSED_NOTE}.\n" if any_collapsed(rows) else ""


def curve_tables(records: list[dict], track: str) -> str:
    """Per learning curve of ``track``: the headline mean ± std of each method at each budget scale,
    Kendall's tau against the largest scale, the methods whose delta vs erm flips sign there, and
    the budget rule's outcome (``budgets.py``)."""
    from .budgets import budget_rule, curve_rows, curve_title, stability

    recs = [r for r in records if r["track"] == track]
    stats = tidy(recs)
    head = track_info(recs, track)["headline"]
    lower = head in track_info(recs, track).get("lower_is_better", [])
    parts = []
    for _, rows in curve_rows(stats, head).items():
        scales = sorted(rows["budget_scale"].unique())
        stab, rule = stability(rows, lower), budget_rule(rows, lower)
        lines = [f"{curve_title(rows)} ({head}):", "",
                 "| method | " + " | ".join(f"x{s:g}" for s in scales) + " |", "|---|" + "---|" * len(scales)]
        order = _erm_first(rows[rows["budget_scale"] == scales[-1]].sort_values("mean", ascending=lower)["method"])
        for method in order:
            by = rows[rows["method"] == method].set_index("budget_scale")
            cells = [("" if s not in by.index else f"{by.loc[s, 'mean']:.3f}" +
                      ("" if pd.isna(by.loc[s, "std"]) else f" ± {by.loc[s, 'std']:.3f}") + collapse_mark(by.loc[s]))
                     for s in scales]
            lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
        lines.append("| tau vs x{:g} | ".format(scales[-1]) + " | ".join(
            "" if pd.isna(stab.loc[s, "tau vs largest"]) else f"{stab.loc[s, 'tau vs largest']:.2f}" for s in scales) + " |")
        lines.append("| sign flips vs erm | " + " | ".join(
            ", ".join(f.split(" (")[0] for f in stab.loc[s, "sign of delta vs erm flips"].split("; ") if f) or "–"
            for s in scales) + " |")
        if rule.get("chosen") is not None:
            verdict = (f"erm's plateau {rule['plateau_mean']:.3f} at x{rule['plateau_scale']:g}; the rule picks "
                       f"x{rule['chosen']:g} (erm at {rule['share_of_plateau']:.0%} of it, tau {rule['tau_vs_plateau']:.2f})")
        elif rule.get("plateau_scale") is not None:
            verdict = f"erm's plateau {rule['plateau_mean']:.3f} at x{rule['plateau_scale']:g}; {rule['reason']}"
        else:
            verdict = rule.get("reason", "")
        parts.append("\n".join(lines) + f"\n\nBudget rule: {verdict}.\n" + _collapse_legend(rows))
    return "\n".join(parts) if parts else "(no learning curve)\n"


SHOT_METRICS = ("balanced_accuracy", "many_acc", "medium_acc", "few_acc")


def shot_tables(records: list[dict], track: str) -> str:
    """Per block of ``track`` (classification): each method's balanced accuracy and many / medium /
    few-shot accuracy, mean ± std over seeds, ``*`` as in :func:`table`; the shot groups of the
    block under its title. Records without the shot metrics (written before they existed) leave
    their cells empty."""
    recs = [r for r in records if r["track"] == track]
    stats = tidy(recs)
    if stats.empty:
        return "(no records)\n"
    drift = DRIFT.get(track, 0.0)
    parts = []
    for (dataset, recipe), block in stats.groupby(["dataset", "recipe"], sort=False):
        rows = block[block["metric"].isin(SHOT_METRICS)].copy()
        rows["text"] = rows.apply(lambda r: _cell(r, drift), axis=1)
        wide = rows.pivot_table(index="method", columns="metric", values="text", aggfunc="first")
        head = block[block["metric"] == "balanced_accuracy"]
        order = _erm_first(head.sort_values("mean", ascending=False)["method"])
        wide = wide.reindex(index=[m for m in order if m in wide.index],
                            columns=[m for m in SHOT_METRICS if m in wide.columns])
        groups = next((r["metrics"]["shot_groups"] for r in recs if r["metrics"].get("shot_groups")
                       and (r["labels"]["dataset"], r["labels"]["recipe"]) == (dataset, recipe)), {})
        title = f"{dataset} / {recipe}"
        if groups:
            title += (f" -- many-shot > {groups['many_above']:g}, few-shot < {groups['few_below']:g} training "
                      f"images: classes {groups['many']} / {groups['medium']} / {groups['few']}")
        names = {"balanced_accuracy": "balanced accuracy", "many_acc": "many", "medium_acc": "medium", "few_acc": "few"}
        lines = [title + ":", "", "| method | " + " | ".join(names[c] for c in wide.columns) + " |",
                 "|---|" + "---|" * len(wide.columns)]
        for method, values in wide.iterrows():
            lines.append(f"| `{method}` | " + " | ".join("" if (isinstance(v, float) and math.isnan(v)) else str(v)
                                                        for v in values) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def render(text: str, root: Path = REFERENCE_DIR) -> str:
    """``text`` with every reference block regenerated from the committed records."""
    cache: dict[str, list[dict]] = {}

    def block(m: re.Match) -> str:
        name = m.group("name")
        if name not in cache:
            cache[name] = load(name, root)
        make = {":curves": curve_tables, ":shots": shot_tables}.get(m.group("kind"), table)
        return m.group(1) + make(cache[name], m.group("track")) + m.group(6)

    return BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except (OSError, ValueError) as exc:  # a missing README or reference set, an empty run folder
        print(f"imbench.results.reference: error: {exc}", file=sys.stderr)
        return 2


def _main(args: list[str]) -> int:
    if len(args) >= 2 and args[0] in ("write", "check"):
        path = Path(args[1])
        text = path.read_text()
        new = render(text)
        if args[0] == "write":
            path.write_text(new)
            return 0
        if new != text:
            print(f"{path}: the reference tables differ from results/reference/ (run: python -m "
                  f"imbench.results.reference write {path})", file=sys.stderr)
            return 1
        return 0
    if len(args) >= 3 and args[0] == "pack":
        env = json.loads(args[3]) if len(args) > 3 else {}
        print(pack(Path(args[1]), args[2], env))
        return 0
    print("usage: python -m imbench.results.reference write|check README.md | pack RUN_DIR NAME ['{json}']",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
