"""bf16 against fp32: does a cell's headline metric depend on the precision it ran in?

``python -m imbench.results.parity RUN_DIR [RUN_DIR ...]`` reads the records of cells run in both
precisions (``imbench run ... --precision fp32`` and ``--precision bf16`` into one folder) and
prints, per block and method, the headline mean in each precision, their paired difference
(bf16 - fp32, paired by seed and subset seed), the paired t-test's p-value, and the seed spread
(the std over seeds of fp32) the difference is to be read against. ``within noise`` is True where
|difference| is below that spread and the t-test does not reject equality at 0.05.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from .aggregate import block_key, current, paired_vs, records_frame, track_info

PRECISIONS = ("fp32", "bf16")


def parity_table(records: list[dict]) -> pd.DataFrame:
    """One row per (block without precision, method) run in both precisions."""
    records = [r for r in current(records)[0] if r.get("status") == "ok"]
    if not records:
        return pd.DataFrame()
    frame = records_frame(records)
    frame["precision"] = [r["config"]["profile"]["budget"].get("precision", "fp32") for r in records]
    frame["pair"] = [block_key(r["config"], without=("precision",)) for r in records]
    rows = []
    for (track, pair, method), g in frame.groupby(["track", "pair", "method"], sort=False):
        head = track_info(records, track)["headline"]
        by = {p: g[g["precision"] == p].set_index(["seed", "subset_seed"])[head].astype(float) for p in PRECISIONS}
        if any(v.empty for v in by.values()):
            continue
        delta, n, p = paired_vs(by["bf16"], by["fp32"])
        spread = float(by["fp32"].std(ddof=1)) if len(by["fp32"]) > 1 else math.nan
        first = g.iloc[0]
        dataset = str(first["dataset"]).split("#")[0]  # labels made unique across precisions: not needed here
        rows.append({"track": track, "block": f"{dataset} / {first['recipe']} / {first['model']}",
                     "method": method, "metric": head, "fp32": float(by["fp32"].mean()),
                     "bf16": float(by["bf16"].mean()), "delta (bf16 - fp32)": delta, "pairs": n,
                     "p (paired t)": p, "seed std (fp32)": spread,
                     "within noise": bool(abs(delta) < spread and not (p < 0.05))})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    from ..benchmarks.contract.records import read_records

    dirs = argv if argv is not None else sys.argv[1:]
    if not dirs:
        print("usage: python -m imbench.results.parity RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    records = [r for d in dirs for r in read_records(Path(d))]
    table = parity_table(records)
    if table.empty:
        print("no cell was run in both fp32 and bf16", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
