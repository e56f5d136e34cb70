"""Plots of a run: from the tidy statistics table (``aggregate.tidy``) and the records.

Every plot function writes each figure as PNG and SVG into ``out_dir`` and returns the paths it
wrote (PNG then SVG, per figure), or ``[]`` when the plot does not apply (no IR sweep, no blend
sweep, no generative method, ...). Figures are built on :class:`matplotlib.figure.Figure` with
an explicit Agg canvas: nothing touches pyplot's global state, so calling these from a library,
a test or a worker leaves no figure open and changes no backend.

Which metric to plot comes from the caller (the track's ``track_info``: ``headline``,
``per_class``, ``lower_is_better``); the functions that read records default to the records'
own ``track_info``. No track and no metric is named here.

One figure per *block* (the settings that differ only in their method: same track, data,
recipe, model and budget), except :func:`metric_vs_ir`, whose figure spans the blocks that
differ only in the recipe's ``ir``, :func:`metric_vs_budget`, one figure per curve (the blocks
that differ only in ``budget_scale``), and :func:`metric_vs_blend`, one figure per block that runs a
generative method at several ``blend`` values.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .aggregate import KEYS, ci95, records_frame, track_info
REFERENCE = "erm"  # the reference method of every block (deltas are taken against it)
# Seconds a cell spends *measuring* its samples (classifier-on-synthetic training), recorded under
# ``extras`` and included in ``timings.total_s``: not a cost of the method itself.
EVALUATION_EXTRAS = ("cas_train_s",)
DPI = 100
_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
            "#8c8c8c", "#ccb974", "#64b5cd"]
_REF_COLOR = "#111111"


# ----------------------------------------------------------------------------- helpers

def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _slug(*parts: object) -> str:
    clean = [re.sub(r"[^A-Za-z0-9.+-]+", "-", str(p)).strip("-") for p in parts if p is not None]
    return "_".join(c for c in clean if c)[:150] or "plot"


def _save(fig: Figure, out_dir: Path | str, name: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, dpi=DPI, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None})
    fig.clear()
    return [png, svg]


def _block_title(row: pd.Series | dict, keys: Sequence[str] = KEYS) -> str:
    return " · ".join(str(row[k]) for k in keys if k in row and str(row[k]) != "")


def _lower(metric: str, lower_is_better: Iterable[str] | None) -> bool:
    return metric in set(lower_is_better or ())


def _family_colors(families: Iterable[str]) -> dict[str, str]:
    names = sorted({str(f) for f in families if isinstance(f, str) and f})
    return {f: _PALETTE[i % len(_PALETTE)] for i, f in enumerate(names)}


def _method_colors(methods: Sequence[str]) -> dict[str, tuple]:
    """Distinct colours for many lines: tab20 then tab20b, the reference in black."""
    from matplotlib import colormaps

    pool = [colormaps["tab20"](i) for i in range(20)] + [colormaps["tab20b"](i) for i in range(20)]
    out, i = {}, 0
    for m in methods:
        if m == REFERENCE:
            out[m] = to_rgb(_REF_COLOR)
        else:
            out[m] = pool[i % len(pool)]
            i += 1
    return out


def _linestyle(i: int) -> str:
    return ["-", "--", "-.", ":"][(i // 20) % 4]


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the warning for all-NaN slices (they stay NaN)."""
    finite = np.isfinite(a)
    total = np.where(finite, a, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _place_labels(ax, xs, ys, labels, *, fontsize: float = 7.0, xlog: bool = False, colors=None,
                  weights=None) -> None:
    """Label points without overlapping each other: greedy, in axes-fraction coordinates; a label
    moved away from its point gets a thin leader line. Call after the axis limits are final."""
    fig = ax.figure
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    pos = ax.get_position()
    width_pt = max(pos.width * fig.get_figwidth() * 72, 1.0)
    height_pt = max(pos.height * fig.get_figheight() * 72, 1.0)

    def fx(x):
        if xlog:
            return (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        return (x - x0) / (x1 - x0) if x1 != x0 else 0.5

    def fy(y):
        return (y - y0) / (y1 - y0) if y1 != y0 else 0.5

    h = fontsize * 1.3 / height_pt
    pad = 5.0 / width_pt
    points = [(fx(x), fy(y), str(t), i) for i, (x, y, t) in enumerate(zip(xs, ys, labels))
              if np.isfinite(x) and np.isfinite(y)]
    mw, mh = 3.5 / width_pt, 3.5 / height_pt  # the markers are obstacles too
    placed: list[tuple[float, float, float, float]] = [(px - mw, py - mh, px + mw, py + mh) for px, py, _, _ in points]
    for px, py, text, i in sorted(points, key=lambda p: -p[1]):
        w = len(text) * fontsize * 0.58 / width_pt
        best = None
        for step in range(0, 14):
            for dy in ((0.0,) if step == 0 else (step * h, -step * h)):
                for side in (1, -1):
                    lx = px + pad if side > 0 else px - pad - w
                    ly = py + dy - h / 2
                    box = (lx, ly, lx + w, ly + h)
                    if box[0] < 0 or box[2] > 1 or box[1] < 0 or box[3] > 1:
                        continue
                    if any(not (box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3])
                           for b in placed):
                        continue
                    best = (box, side)
                    break
                if best:
                    break
            if best:
                break
        if best is None:  # crowded: fall back to the right of the point, overlapping
            best = ((px + pad, py - h / 2, px + pad + w, py + h / 2), 1)
        box, side = best
        placed.append(box)
        tx = box[0] if side > 0 else box[2]
        ty = (box[1] + box[3]) / 2
        moved = abs(ty - py) > h * 0.6
        ax.annotate(text, xy=(px, py), xycoords="axes fraction", xytext=(tx, ty), textcoords="axes fraction",
                    fontsize=fontsize, ha="left" if side > 0 else "right", va="center",
                    color=(colors[i] if colors is not None else "#222222"),
                    fontweight=(weights[i] if weights is not None else "normal"),
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="#999999", shrinkA=0, shrinkB=2) if moved else None)


def pareto_front(costs: Sequence[float], gains: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (cost as low and gain as high, one of the
    two strictly better), sorted by cost. NaN points are never on the front; of exact
    duplicates both are kept."""
    pts = [(float(c), float(g), i) for i, (c, g) in enumerate(zip(costs, gains))
           if np.isfinite(c) and np.isfinite(g)]
    front = []
    for c, g, i in pts:
        dominated = any((c2 <= c and g2 >= g) and (c2 < c or g2 > g) for c2, g2, _ in pts)
        if not dominated:
            front.append((c, -g, i))
    return [i for _, _, i in sorted(front)]


def parse_ir(recipe: str) -> float | None:
    """The ``ir=`` of a recipe label (``longtail(ir=50)`` -> 50.0), None without one."""
    m = re.search(r"(?:^|[(,:])ir=([0-9][0-9.eE+-]*)", str(recipe))
    if not m:
        return None
    try:
        return float(m.group(1))
    except ValueError:
        return None


def _without_ir(recipe: str) -> str:
    text = re.sub(r"(?<=[(,:])ir=[0-9][0-9.eE+-]*,?", "", str(recipe))
    text = text.replace(",)", ")").replace("()", "")
    return text.rstrip(":")


def _find_param(params, name: str):
    """``params[name]``, looked up through a hybrid's per-part parameter dicts too."""
    if isinstance(params, dict):
        if name in params and not isinstance(params[name], dict):
            return params[name]
        for value in params.values():
            found = _find_param(value, name)
            if found is not None:
                return found
    return None


def _without_param(method: str, name: str) -> str:
    return re.sub(rf":{re.escape(name)}=[^:+#]*", "", str(method))


def _blend_value(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "full":
        return 1.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _ok_records(records: Sequence[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """(one row per successful record with its labels and block, the matching records)."""
    records = list(records)
    if not records:
        return pd.DataFrame(), []
    frame = records_frame(records)
    frame["_i"] = range(len(records))
    frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    return frame, records


def _blocks(frame: pd.DataFrame):
    return frame.groupby(KEYS + ["block"], sort=False)


def cell_cost(record: dict, exclude: Sequence[str] = EVALUATION_EXTRAS) -> float:
    """Seconds a cell's method costs: ``timings.total_s`` (generator training included), plus the
    first training's seconds when the generator came from the cache
    (``extras.generator_train_s_original``), minus the evaluation-only seconds named in
    ``exclude`` (found under ``extras``)."""
    timings, extras = record.get("timings") or {}, record.get("extras") or {}
    total = timings.get("total_s")
    if total is None:
        return math.nan
    cost = float(total)
    if extras.get("generator_cache") == "hit" and extras.get("generator_train_s_original") is not None:
        cost += float(extras["generator_train_s_original"]) - float(extras.get("generator_train_s") or 0.0)
    for key in exclude:
        if isinstance(extras.get(key), (int, float)):
            cost -= float(extras[key])
    return cost


# ----------------------------------------------------------------------------- plots from tidy

def ci_bars(tidy: pd.DataFrame, headline: str, out_dir: Path | str, *,
            lower_is_better: Iterable[str] = ()) -> list[Path]:
    """Per block: horizontal bars of the headline metric's mean per method, best at the top, with
    the 95 % CI over seeds (none for a single seed); the reference method in black with a dashed
    line at its mean, colours by method family, hatched bars (and ``n=k`` in the label) for
    methods with fewer successful seeds than the most in their block. A block of one method gets
    no plot."""
    rows = tidy[(tidy["metric"] == headline)] if not tidy.empty else tidy
    if rows.empty:
        return []
    lower = _lower(headline, lower_is_better)
    colors = _family_colors(tidy["family"])
    paths: list[Path] = []
    for key, b in rows.groupby(KEYS + ["block"], sort=False):
        missing = int(b["mean"].isna().sum())
        b = b[b["mean"].notna()].sort_values("mean", ascending=lower)
        if len(b) < 2:  # one method: nothing to compare, and its axis would zoom into noise
            continue
        n = len(b)
        fewer = b["fewer_seeds"].eq(True).to_numpy()
        labels = [m + (f"  (n={int(s)})" if f else "") for m, s, f in zip(b["method"], b["n_seeds"], fewer)]
        width = 7.5 + 0.055 * max(len(t) for t in labels)
        fig = _figure(width, 2.2 + 0.27 * n)
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        mean = b["mean"].to_numpy(float)
        lo, hi = b["ci95_lo"].to_numpy(float), b["ci95_hi"].to_numpy(float)
        face = [_REF_COLOR if m == REFERENCE else colors.get(f, _PALETTE[0])
                for m, f in zip(b["method"], b["family"])]
        ax.barh(y, mean, color=face, hatch=["///" if f else "" for f in fewer],
                edgecolor="white", height=0.72, zorder=2)
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        if has_ci.any():
            ax.errorbar(mean[has_ci], y[has_ci], xerr=[mean[has_ci] - lo[has_ci], hi[has_ci] - mean[has_ci]],
                        fmt="none", ecolor="#333333", elinewidth=1, capsize=2.5, zorder=3)
        left_vals = np.where(has_ci, lo, mean)
        right_vals = np.where(has_ci, hi, mean)
        vmin, vmax = float(np.nanmin(left_vals)), float(np.nanmax(right_vals))
        span = max(vmax - vmin, abs(vmax) * 0.02, 1e-9)
        left = vmin - 0.25 * span
        if vmin >= 0 and left < 0:
            left = 0.0
        right = vmax + 0.16 * span
        ax.set_xlim(left, right)
        for yi, m, r in zip(y, mean, right_vals):
            ax.text(r + 0.01 * span, yi, f"{m:.3f}", va="center", fontsize=7, color="#333333")
        ref = b[b["method"] == REFERENCE]
        if len(ref):
            ax.axvline(float(ref["mean"].iloc[0]), color=_REF_COLOR, lw=0.8, ls="--", zorder=1)
        ax.set_yticks(y, labels, fontsize=8)
        for tick, m in zip(ax.get_yticklabels(), b["method"]):
            if m == REFERENCE:
                tick.set_fontweight("bold")
        ax.set_ylim(-0.7, n - 0.3)
        ax.grid(axis="x", color="#dddddd", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
        note = " (lower is better)" if lower else ""
        ax.set_xlabel(f"{headline}{note}: mean over seeds, 95 % CI (axis starts at {left:.3g})", fontsize=9)
        first = b.iloc[0]
        extra = f" — {missing} method(s) without a successful cell" if missing else ""
        ax.set_title(f"{headline} per method\n{_block_title(first)}{extra}", fontsize=10)
        handles = [Patch(color=c, label=f) for f, c in colors.items() if f in set(b["family"])]
        if len(ref):
            handles.append(Patch(color=_REF_COLOR, label=f"{REFERENCE} (reference)"))
        if fewer.any():
            handles.append(Patch(facecolor="#bbbbbb", hatch="///", edgecolor="white", label="fewer seeds than the block's most"))
        fig.legend(handles=handles, fontsize=7.5, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
        paths += _save(fig, out_dir, _slug("ci_bars", headline, *[first[k] for k in KEYS], str(first["block"])[:6]))
    return paths


def _sweep_axes(ax, ax_d, ticks, xlabel: str, headline: str, lower: bool, spread: str, delta: str,
                base: float = 10) -> None:
    """The two panels of a sweep plot (metric, difference to the reference): log x with the swept
    values as ticks, grid, the zero line of the difference, axis labels."""
    for a in (ax, ax_d):
        a.set_xscale("log", base=base)
        a.set_xticks(ticks, [f"{v:g}" for v in ticks])
        a.minorticks_off()
        a.grid(color="#e5e5e5", lw=0.6)
        a.set_xlabel(xlabel)
    ax_d.axhline(0.0, color=_REF_COLOR, lw=0.8, ls="--")
    note = " (lower is better)" if lower else ""
    ax.set_ylabel(f"{headline}{note}\n{spread}")
    ax_d.set_ylabel(delta)


def metric_vs_ir(tidy: pd.DataFrame, headline: str, out_dir: Path | str, *,
                 lower_is_better: Iterable[str] = ()) -> list[Path]:
    """The headline metric against the imbalance ratio (log x), one line per method with 95 % CI
    error bars, and its difference to the reference method beside it; one figure per group of
    recipes that differ only in ``ir`` (parsed from the recipe label), when it has 2+ IRs."""
    rows = tidy[tidy["metric"] == headline].copy() if not tidy.empty else tidy
    if rows.empty:
        return []
    rows["ir"] = rows["recipe"].map(parse_ir)
    rows = rows[rows["ir"].notna() & rows["mean"].notna()]
    if rows.empty:
        return []
    rows["recipe_base"] = rows["recipe"].map(_without_ir)
    lower = _lower(headline, lower_is_better)
    paths: list[Path] = []
    group_keys = ["track", "dataset", "recipe_base", "model", "profile"]
    for key, g in rows.groupby(group_keys, sort=False):
        irs = sorted(g["ir"].unique())
        if len(irs) < 2:
            continue
        last = g[g["ir"] == irs[-1]].set_index("method")["mean"]
        methods = list(dict.fromkeys(g["method"]))
        methods.sort(key=lambda m: (-(last.get(m, -np.inf)) if not lower else last.get(m, np.inf)))
        colors = _method_colors(methods)
        n = len(methods)
        fig = _figure(13.5, max(4.8, 1.6 + 0.19 * n))
        ax, ax_d = fig.subplots(1, 2, sharex=True)
        spread = 0.12 * (math.log10(irs[-1]) - math.log10(irs[0]))
        for i, m in enumerate(methods):
            s = g[g["method"] == m].sort_values("ir")
            jitter = 10 ** ((i - (n - 1) / 2) / max(n - 1, 1) * spread) if n > 1 else 1.0
            x = s["ir"].to_numpy(float) * jitter
            mean = s["mean"].to_numpy(float)
            lo, hi = s["ci95_lo"].to_numpy(float), s["ci95_hi"].to_numpy(float)
            err = np.vstack([np.where(np.isfinite(lo), mean - lo, 0.0), np.where(np.isfinite(hi), hi - mean, 0.0)])
            is_ref = m == REFERENCE
            style = dict(color=colors[m], ls=_linestyle(i), lw=2.2 if is_ref else 1.2, marker="o", ms=3.5,
                         zorder=3 if is_ref else 2)
            ax.errorbar(x, mean, yerr=err, capsize=1.5, elinewidth=0.7, label=m, **style)
            ax_d.plot(x, s["delta_vs_erm"].to_numpy(float), **style)
        _sweep_axes(ax, ax_d, irs, "imbalance ratio (log scale)", headline, lower, "mean, 95 % CI over seeds",
                    f"Δ {headline} vs {REFERENCE}")
        ax.set_title(f"{headline} against the imbalance ratio", fontsize=10)
        ax_d.set_title(f"difference to {REFERENCE} (same IR)", fontsize=10)
        first = dict(zip(group_keys, key))
        fig.suptitle(_block_title(first, group_keys), fontsize=10)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7,
                   title=f"order: {headline} at IR {irs[-1]:g}", title_fontsize=7, frameon=False)
        paths += _save(fig, out_dir, _slug("metric_vs_ir", headline, *key))
    return paths


def metric_vs_budget(tidy: pd.DataFrame, headline: str, out_dir: Path | str, *,
                     lower_is_better: Iterable[str] = ()) -> list[Path]:
    """Learning curves: the headline metric against the budget scale (log 2 x), one line per
    method with its 95 % CI band, and its difference to the reference method beside it; one figure
    per curve (the blocks that differ only in ``budget_scale``) measured at 2+ scales."""
    from .budgets import curve_rows, curve_title

    lower = _lower(headline, lower_is_better)
    paths: list[Path] = []
    for curve, g in curve_rows(tidy, headline).items():
        scales = sorted(g["budget_scale"].unique())
        last = g[g["budget_scale"] == scales[-1]].set_index("method")["mean"]
        methods = list(dict.fromkeys(g["method"]))
        methods.sort(key=lambda m: (-(last.get(m, -np.inf)) if not lower else last.get(m, np.inf)))
        colors = _method_colors(methods)
        fig = _figure(13.5, max(4.8, 1.6 + 0.19 * len(methods)))
        ax, ax_d = fig.subplots(1, 2, sharex=True)
        for i, m in enumerate(methods):
            s = g[g["method"] == m].sort_values("budget_scale")
            x = s["budget_scale"].to_numpy(float)
            lo, hi = s["ci95_lo"].to_numpy(float), s["ci95_hi"].to_numpy(float)
            is_ref = m == REFERENCE
            style = dict(color=colors[m], ls=_linestyle(i), lw=2.2 if is_ref else 1.2, marker="o", ms=3.5,
                         zorder=3 if is_ref else 2)
            ax.plot(x, s["mean"].to_numpy(float), label=m, **style)
            band = np.isfinite(lo) & np.isfinite(hi)
            if band.any():
                ax.fill_between(x[band], lo[band], hi[band], color=colors[m], alpha=0.12, lw=0, zorder=1)
            ax_d.plot(x, s["delta_vs_erm"].to_numpy(float), **style)
        _sweep_axes(ax, ax_d, scales, "budget scale (x the profile's training steps, log scale)", headline, lower,
                    "mean, 95 % CI band over seeds", f"Δ {headline} vs {REFERENCE} (paired)", base=2)
        ax.set_title(f"{headline} against the training budget", fontsize=10)
        ax_d.set_title(f"difference to {REFERENCE} (same budget); a line crossing 0 is a verdict that flips",
                       fontsize=10)
        title = curve_title(g)
        fig.suptitle(title, fontsize=10)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7,
                   title=f"order: {headline} at x{scales[-1]:g}", title_fontsize=7, frameon=False)
        paths += _save(fig, out_dir, _slug("metric_vs_budget", headline, title, str(curve)[:6]))
    return paths


def quality_vs_gain(tidy: pd.DataFrame, headline: str, out_dir: Path | str, *,
                    quality: Sequence[str] | None = None, lower_is_better: Iterable[str] = ()) -> list[Path]:
    """For the methods that generate samples: each sample-quality metric (x, one panel each)
    against the headline metric's gain over the reference method (y), per block.

    ``quality``: the metrics to plot; by default every metric of the table that the reference
    method does not report but some other method does (what only generative methods produce),
    in the table's order. Nothing is written for a block without such a method."""
    if tidy.empty:
        return []
    lower = _lower(headline, lower_is_better)
    paths: list[Path] = []
    for key, b in tidy.groupby(KEYS + ["block"], sort=False):
        head = b[b["metric"] == headline].set_index("method")
        if head.empty:
            continue
        metrics = list(quality) if quality is not None else [
            q for q in dict.fromkeys(b["metric"])
            if q != headline and not b[(b["metric"] == q) & (b["method"] == REFERENCE)]["mean"].notna().any()]
        panels = []
        for q in metrics:
            sub = b[(b["metric"] == q) & b["mean"].notna()].set_index("method")
            sub = sub[sub.index.isin(head.index) & (sub.index != REFERENCE)]
            if len(sub):
                panels.append((q, sub))
        if not panels:
            continue
        ncols = min(len(panels), 2)
        nrows = math.ceil(len(panels) / ncols)
        fig = _figure(max(6.5, 6.0 * ncols), 0.6 + 4.6 * nrows)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for extra in axes[len(panels):]:
            extra.set_visible(False)
        colors = _family_colors(tidy["family"])
        for ax, (q, sub) in zip(axes, panels):
            gain = head.loc[sub.index, "delta_vs_erm"].to_numpy(float) * (-1 if lower else 1)
            x = sub["mean"].to_numpy(float)
            lo, hi = sub["ci95_lo"].to_numpy(float), sub["ci95_hi"].to_numpy(float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.errorbar(x[ok], gain[ok], xerr=[x[ok] - lo[ok], hi[ok] - x[ok]], fmt="none",
                            ecolor="#bbbbbb", elinewidth=0.8, capsize=2, zorder=1)
            ax.scatter(x, gain, s=30, zorder=3, c=[colors.get(f, _PALETTE[0]) for f in sub["family"]])
            ax.axhline(0.0, color=_REF_COLOR, lw=0.8, ls="--")
            xs = np.concatenate([x, lo[ok], hi[ok]])
            xmin, xmax = float(np.nanmin(xs)), float(np.nanmax(xs))
            span = max(xmax - xmin, abs(xmax) * 0.05, 1e-9)
            ax.set_xlim(xmin - 0.08 * span, xmax + 0.35 * span)
            gmin, gmax = float(np.nanmin(np.append(gain, 0.0))), float(np.nanmax(np.append(gain, 0.0)))
            gspan = max(gmax - gmin, 1e-3)
            ax.set_ylim(gmin - 0.1 * gspan, gmax + 0.1 * gspan)
            better = "lower" if _lower(q, lower_is_better) else "higher"
            ax.set_xlabel(f"{q} ({better} is better), mean over seeds")
            ax.set_ylabel(f"Δ {headline} vs {REFERENCE}" + (" (sign flipped: lower is better)" if lower else ""))
            ax.set_title(f"{q} against the gain", fontsize=10)
            ax.grid(color="#e5e5e5", lw=0.6)
            _place_labels(ax, x, gain, list(sub.index), fontsize=7)
        first = b.iloc[0]
        fig.suptitle(f"sample quality against the {headline} gain\n{_block_title(first)}", fontsize=10)
        paths += _save(fig, out_dir, _slug("quality_vs_gain", headline, *[first[k] for k in KEYS], str(first["block"])[:6]))
    return paths


# ----------------------------------------------------------------------------- plots from records

def per_class_heatmap(records: Sequence[dict], per_class_metric: str | None, out_dir: Path | str, *,
                      annotate_max: int = 400, lower_is_better: Iterable[str] | None = None) -> list[Path]:
    """Per block: methods x classes, the mean over seeds of the per-class metric (default: the
    records' ``track_info["per_class"]``). Class names from ``class_counts.class_names`` with the
    recipe's count below each; minority classes (``class_counts.minority``) marked with ``*``
    in red; values written in the cells when there are at most ``annotate_max`` of them."""
    frame, records = _ok_records(records)
    if frame.empty:
        return []
    paths: list[Path] = []
    for key, b in _blocks(frame):
        recs = [records[i] for i in b["_i"]]
        info = track_info(recs, key[0])
        metric = per_class_metric or info.get("per_class")
        if not metric:
            continue
        lower = _lower(metric, lower_is_better if lower_is_better is not None else info.get("lower_is_better"))
        by_method: dict[str, list[np.ndarray]] = {}
        for method, r in zip(b["method"], recs):
            values = (r.get("metrics") or {}).get(metric)
            if isinstance(values, list) and values:
                by_method.setdefault(method, []).append(
                    np.array([np.nan if v is None else float(v) for v in values], dtype=float))
        if not by_method:
            continue
        n_classes = max(len(v) for vs in by_method.values() for v in vs)
        counts = recs[0].get("class_counts") or {}
        names = list(counts.get("class_names") or [])
        names = [str(x) for x in names[:n_classes]] + [str(i) for i in range(len(names), n_classes)]
        minority = {int(i) for i in counts.get("minority") or [] if 0 <= int(i) < n_classes}
        recipe_counts = counts.get("recipe") or []
        mat, methods = [], []
        for method, vs in by_method.items():
            stack = np.full((len(vs), n_classes), np.nan)
            for j, v in enumerate(vs):
                stack[j, :len(v)] = v
            mat.append(_nanmean(stack, axis=0))
            methods.append(method)
        mat = np.array(mat)
        row_mean = _nanmean(mat, axis=1)
        order = np.argsort(np.where(np.isfinite(row_mean), row_mean * (1 if lower else -1), np.inf), kind="stable")
        mat, methods = mat[order], [methods[i] for i in order]
        n_m = len(methods)
        label_w = 0.065 * max(len(m) for m in methods)
        cell_w = 0.55 if n_classes <= 30 else max(0.12, 16.0 / n_classes)
        fig = _figure(min(2.8 + label_w + cell_w * n_classes, 22.0), 2.3 + 0.3 * n_m)
        ax = fig.add_subplot()
        finite = mat[np.isfinite(mat)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if vmax - vmin < 1e-9:
            vmin, vmax = vmin - 0.5, vmax + 0.5
        cmap = "viridis_r" if lower else "viridis"
        im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                       interpolation="nearest")
        if mat.size <= annotate_max:
            for i in range(n_m):
                for j in range(n_classes):
                    v = mat[i, j]
                    if not np.isfinite(v):
                        ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="#888888")
                        continue
                    r, g, bl, _ = im.cmap(im.norm(v))
                    dark = 0.299 * r + 0.587 * g + 0.114 * bl < 0.55
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        step = max(1, math.ceil(n_classes / 40))
        ticks = list(range(0, n_classes, step))
        tick_labels = []
        for j in ticks:
            text = names[j] + ("*" if j in minority else "")
            if j < len(recipe_counts) and n_classes <= 30:
                text += f"\nn={recipe_counts[j]}"
            tick_labels.append(text)
        ax.set_xticks(ticks, tick_labels, fontsize=7, rotation=0 if n_classes <= 30 and max(len(names[j]) for j in ticks) <= 5 else 90)
        for tick, j in zip(ax.get_xticklabels(), ticks):
            if j in minority:
                tick.set_color("#c0392b")
                tick.set_fontweight("bold")
        ax.set_yticks(range(n_m), methods, fontsize=8)
        for tick, m in zip(ax.get_yticklabels(), methods):
            if m == REFERENCE:
                tick.set_fontweight("bold")
        ax.set_xlabel("class (training count below; * in red = minority class)", fontsize=9)
        cbar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01)
        cbar.set_label(f"{metric}, mean over seeds", fontsize=8)
        first = b.iloc[0]
        ax.set_title(f"{metric} per class (methods sorted by their class mean)\n{_block_title(first)}", fontsize=10)
        paths += _save(fig, out_dir, _slug("per_class", metric, *[first[k] for k in KEYS], str(first["block"])[:6]))
    return paths


def cost_vs_gain(records: Sequence[dict], tidy: pd.DataFrame, headline: str, out_dir: Path | str, *,
                 lower_is_better: Iterable[str] | None = None,
                 exclude: Sequence[str] = EVALUATION_EXTRAS) -> list[Path]:
    """Per block: mean seconds per cell of each method (x, :func:`cell_cost`: generator training
    counted even when it came from the cache, evaluation-only seconds left out) against the
    headline metric's gain over the reference method (y, the tidy table's ``delta_vs_erm``,
    sign flipped when lower is better); the Pareto front (least cost for the most gain,
    :func:`pareto_front`) drawn as a step line, every point labelled."""
    frame, records = _ok_records(records)
    if frame.empty or tidy.empty:
        return []
    head = tidy[tidy["metric"] == headline]
    if head.empty:
        return []
    frame["cost"] = [cell_cost(records[i], exclude) for i in frame["_i"]]
    paths: list[Path] = []
    colors = _family_colors(pd.concat([frame["family"], tidy["family"]]))
    for key, b in _blocks(frame):
        recs = [records[i] for i in b["_i"]]
        lower = _lower(headline, lower_is_better if lower_is_better is not None
                       else track_info(recs, key[0]).get("lower_is_better"))
        cost = b.groupby("method", sort=False)["cost"].mean()
        family = b.groupby("method", sort=False)["family"].first()
        match = head
        for k, v in zip(KEYS, key[:len(KEYS)]):
            match = match[match[k] == v]
        gain = match.drop_duplicates("method").set_index("method")["delta_vs_erm"].astype(float) * (-1 if lower else 1)
        methods = [m for m in cost.index if m in gain.index and np.isfinite(cost[m]) and np.isfinite(gain[m])]
        if len(methods) < 2:
            continue
        xs, ys = cost[methods].to_numpy(float), gain[methods].to_numpy(float)
        front = pareto_front(xs, ys)
        fig = _figure(10.0, 6.5)
        ax = fig.add_subplot()
        xlog = bool(np.nanmin(xs) > 0 and np.nanmax(xs) / np.nanmin(xs) > 3)
        if xlog:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0), numticks=30))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        face = [_REF_COLOR if m == REFERENCE else colors.get(family[m], _PALETTE[0]) for m in methods]
        ax.scatter(xs, ys, s=28, c=face, zorder=3)
        fx, fy = xs[front], ys[front]
        ax.step(np.append(fx, fx[-1]), np.append(fy, fy[-1]), where="post", color="#c0392b", lw=1.2, zorder=2)
        ax.scatter(fx, fy, s=90, facecolors="none", edgecolors="#c0392b", lw=1.4, zorder=4)
        ax.axhline(0.0, color=_REF_COLOR, lw=0.8, ls="--", zorder=1)
        if xlog:
            ax.set_xlim(np.nanmin(xs) / 1.15, np.nanmax(xs) * 1.6)
        else:
            span = max(np.nanmax(xs) - np.nanmin(xs), 1e-6)
            ax.set_xlim(max(0.0, np.nanmin(xs) - 0.05 * span), np.nanmax(xs) + 0.3 * span)
        gspan = max(float(np.nanmax(ys) - np.nanmin(ys)), 1e-3)
        ax.set_ylim(min(0.0, float(np.nanmin(ys))) - 0.08 * gspan, max(0.0, float(np.nanmax(ys))) + 0.08 * gspan)
        ax.grid(color="#e5e5e5", lw=0.6)
        ax.set_xlabel("seconds per cell, mean over seeds" + (" (log scale)" if xlog else "")
                      + "\n(generator training counted even from the cache; sample-evaluation seconds left out)", fontsize=9)
        ax.set_ylabel(f"Δ {headline} vs {REFERENCE}" + (" (sign flipped: lower is better)" if lower else ""))
        on_front = set(front)
        _place_labels(ax, xs, ys, methods, fontsize=7, xlog=xlog,
                      colors=["#c0392b" if i in on_front else "#222222" for i in range(len(methods))],
                      weights=["bold" if i in on_front else "normal" for i in range(len(methods))])
        handles = [Patch(color=c, label=f) for f, c in colors.items() if f in set(family)]
        handles.append(Line2D([], [], color="#c0392b", marker="o", mfc="none", label="Pareto front (labels in red)"))
        ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9)
        first = b.iloc[0]
        ax.set_title(f"cost against gain\n{_block_title(first)}", fontsize=10)
        paths += _save(fig, out_dir, _slug("cost_vs_gain", headline, *[first[k] for k in KEYS], str(first["block"])[:6]))
    return paths


def metric_vs_blend(records: Sequence[dict], headline: str | None, out_dir: Path | str, *,
                    lower_is_better: Iterable[str] | None = None) -> list[Path]:
    """Per block, for each method run at 2+ ``blend`` values (``config.method.params.blend``,
    also inside a hybrid's part; ``full`` = 1.0): the headline metric (default: the records'
    ``track_info["headline"]``) against blend, mean and 95 % CI over seeds, the reference
    method's mean as a dashed line."""
    frame, records = _ok_records(records)
    if frame.empty:
        return []
    frame["blend"] = [_blend_value(_find_param(((records[i].get("config") or {}).get("method") or {}).get("params"), "blend"))
                      for i in frame["_i"]]
    paths: list[Path] = []
    for key, b in _blocks(frame):
        recs = [records[i] for i in b["_i"]]
        info = track_info(recs, key[0])
        metric = headline or info.get("headline")
        if not metric or metric not in b:
            continue
        lower = _lower(metric, lower_is_better if lower_is_better is not None else info.get("lower_is_better"))
        s = b[b["blend"].notna()].assign(base=lambda d: d["method"].map(lambda m: _without_param(m, "blend")))
        sweeps = [m for m, g in s.groupby("base", sort=False) if g["blend"].nunique() >= 2]
        if not sweeps:
            continue
        colors = _method_colors(sweeps)
        fig = _figure(8.5, 5.0)
        ax = fig.add_subplot()
        for i, m in enumerate(sweeps):
            g = s[s["base"] == m]
            stats = []
            for blend, cells in g.groupby("blend"):
                vals = cells[metric].astype(float).to_numpy()
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    lo, hi = ci95(vals)
                    stats.append((blend, vals.mean(), lo, hi))
            x, mean, lo, hi = (np.array(v, dtype=float) for v in zip(*stats))
            err = np.vstack([np.where(np.isfinite(lo), mean - lo, 0.0), np.where(np.isfinite(hi), hi - mean, 0.0)])
            ax.errorbar(x, mean, yerr=err, marker="o", ms=4, capsize=3, color=colors[m], ls=_linestyle(i), label=m)
        ref = b[b["method"] == REFERENCE][metric].astype(float)
        if ref.notna().any():
            ax.axhline(float(ref.mean()), color=_REF_COLOR, lw=0.9, ls="--", label=f"{REFERENCE} (no synthetic data)")
        ax.set_xlim(0.0, 1.05)
        ax.set_xlabel("blend: fraction of each class's deficit filled with generated images (full = 1)")
        ax.set_ylabel(f"{metric}" + (" (lower is better)" if lower else "") + "\nmean, 95 % CI over seeds")
        ax.grid(color="#e5e5e5", lw=0.6)
        ax.legend(fontsize=7, loc="best")
        first = b.iloc[0]
        ax.set_title(f"{metric} against blend\n{_block_title(first)}", fontsize=10)
        paths += _save(fig, out_dir, _slug("metric_vs_blend", metric, *[first[k] for k in KEYS], str(first["block"])[:6]))
    return paths


def sample_gallery(records: Sequence[dict]) -> list[tuple[str, Path]]:
    """(label, path) of the sample grids (``extras.samples_png``) that exist: one per method per
    block, from its lowest successful seed; in block order, methods sorted by name."""
    frame, records = _ok_records(records)
    if frame.empty:
        return []
    out: list[tuple[str, Path]] = []
    for key, b in _blocks(frame):
        chosen: dict[str, tuple] = {}
        for method, seed, subset, i in zip(b["method"], b["seed"], b["subset_seed"], b["_i"]):
            png = ((records[i].get("extras") or {}).get("samples_png"))
            if not png or not Path(png).is_file():
                continue
            rank = (subset, seed)
            if method not in chosen or rank < chosen[method][0]:
                chosen[method] = (rank, Path(png))
        for method in sorted(chosen):
            (subset, seed), path = chosen[method]
            label = " · ".join([*(str(k) for k in key[1:len(KEYS)]), method]) + f" (seed {seed})"
            out.append((label, path))
    return out


def all_plots(records: Sequence[dict], tidy: pd.DataFrame, out_dir: Path | str, *,
              info: dict | None = None) -> dict[str, list[Path]]:
    """Every plot above for one track's records and tidy rows; ``info`` is the track's
    ``track_info`` (default: the records'). Returns {section heading: paths}, empty sections
    left out."""
    records = list(records)
    if info is None:
        info = track_info(records, records[0]["track"]) if records else {}
    headline, lower = info.get("headline"), list(info.get("lower_is_better") or [])
    if not headline:
        return {}
    sections = {
        f"{headline} per method (95 % CI)": ci_bars(tidy, headline, out_dir, lower_is_better=lower),
        f"{headline} against the imbalance ratio": metric_vs_ir(tidy, headline, out_dir, lower_is_better=lower),
        f"{headline} against the training budget": metric_vs_budget(tidy, headline, out_dir, lower_is_better=lower),
        f"{info.get('per_class')} per class": (per_class_heatmap(records, info["per_class"], out_dir, lower_is_better=lower)
                                               if info.get("per_class") else []),
        "cost against gain": cost_vs_gain(records, tidy, headline, out_dir, lower_is_better=lower),
        "sample quality against gain": quality_vs_gain(tidy, headline, out_dir, lower_is_better=lower),
        f"{headline} against blend": metric_vs_blend(records, headline, out_dir, lower_is_better=lower),
    }
    return {k: v for k, v in sections.items() if v}
