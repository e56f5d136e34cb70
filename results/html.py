"""One self-contained ``report.html``: tables, plots, failures, commands, versions, samples.

The page is a function of the data passed in (DataFrames, paths of PNG files, strings and the
run records); it opens from a file offline: PNG images are embedded as ``data:image/png;base64``
URIs, the CSS is inline, there is no script and no external URL. Every piece of text (labels,
error messages, column names, cell values) is HTML-escaped.

Typical use::

    write_html(out / "report.html", title="imbench report: quick", records=records,
               run_dirs=[run_dir], tables={"Pivot": pivot, "Leaderboard": {block: frame, ...},
               "Average ranks": ranks, "Friedman test": {"chi2_f": ..., "p": ...}},
               plots=plots.all_plots(records, tidy, out / "plots"), gallery=plots.sample_gallery(records))
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import re
import shlex
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2125;background:#fafafa;line-height:1.45}
main{max-width:1400px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:1.6em;margin:.2em 0 .3em}h2{font-size:1.3em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid #d0d7de}
h3{font-size:1.05em;margin:1.2em 0 .4em;color:#333}
.meta{border-collapse:collapse;margin:.4em 0 1em}.meta th{text-align:left;padding:2px 14px 2px 0;color:#555;font-weight:600;vertical-align:top}
.meta td{padding:2px 0}
.ok{color:#1a7f37;font-weight:600}.bad{color:#c0392b;font-weight:600}
nav{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;margin:10px 0;display:flex;flex-wrap:wrap;gap:4px 18px}
nav a{color:#0b5cad;text-decoration:none;white-space:nowrap}
.scroll{display:inline-block;vertical-align:top;overflow:auto;max-height:75vh;max-width:100%;box-sizing:border-box;border:1px solid #d0d7de;border-radius:4px;background:#fff;margin:.3em 0 1em}
table.data{border-collapse:collapse;font-size:12.5px;font-variant-numeric:tabular-nums}
table.data th,table.data td{padding:3px 9px;border-bottom:1px solid #eaecef;white-space:nowrap;text-align:right}
table.data thead th{position:sticky;top:0;background:#f0f3f6;z-index:1;border-bottom:1px solid #c8ced6}
table.data tbody tr:nth-child(even){background:#f8f9fb}table.data tbody tr:hover{background:#eef4ff}
table.data tbody th,table.data td:first-child{text-align:left}
table.data.kv td{white-space:normal;text-align:left;max-width:60em}
table.data td.wrap{white-space:pre-wrap;word-break:break-word;text-align:left;min-width:30em;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:4px;padding:6px;max-width:100%;box-sizing:border-box}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#444;margin-top:4px;max-width:100%;word-break:break-word}
.gallery figure{width:calc(33.3% - 10px);min-width:280px}.gallery img{width:100%}
pre.cmd{background:#0d1117;color:#e6edf3;padding:10px 14px;border-radius:6px;font-size:12.5px;white-space:pre-wrap;overflow-wrap:anywhere}
pre.cmd span{display:block;margin-bottom:.8em}
pre.text{background:#fff;border:1px solid #d0d7de;padding:8px 12px;border-radius:4px;overflow-x:auto;font-size:12.5px}
.note{color:#555;font-size:13px;max-width:75em}
tr.same td{color:#9aa0a6}
"""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.1f}"
    if abs(x) >= 0.001:
        return f"{x:.3f}"
    return f"{x:.2e}"


def _anchor(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    name, i = base, 2
    while name in used:
        name, i = f"{base}-{i}", i + 1
    used.add(name)
    return name


def table_html(frame: pd.DataFrame | pd.Series, *, index: bool | None = None) -> str:
    """A DataFrame as an escaped HTML table in a scrolling box (floats with 3 decimals, NaN as –)."""
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if frame.empty:
        return '<p class="note">(empty)</p>'
    frame = frame.copy()
    for col in frame.columns:  # whole numbers stored as floats (ranks, counts) shown without decimals
        values = frame[col]
        if pd.api.types.is_float_dtype(values) and values.notna().any():
            finite = values.dropna()
            if ((finite % 1) == 0).all() and (finite.abs() < 1e15).all():
                frame[col] = values.astype("Int64")
    if index is None:
        index = not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None
    if index and frame.index.nlevels == 1 and frame.index.name is not None and frame.index.name not in frame.columns:
        frame = frame.reset_index()  # the index's name in the header row, not on a row of its own
        frame.columns.name = None
        index = False
    elif index and frame.index.nlevels == 1:
        frame = frame.rename_axis(None)
    body = frame.to_html(escape=True, index=index, na_rep="–", float_format=_fmt, border=0,
                         classes="data", justify="left")
    body = body.replace(' style="text-align: left;"', "")
    # rows of erm's copies (a method with nothing to do on the block) greyed
    body = "<tr".join(part if "(= erm)</td>" not in part.split("</tr>")[0] else ' class="same"' + part
                      for part in body.split("<tr"))
    return f'<div class="scroll">{body}</div>'


def _mapping_html(values: Mapping) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v) if isinstance(v, float) else v)}</td></tr>"
                   for k, v in values.items())
    return f'<div class="scroll"><table class="data kv"><tbody>{rows}</tbody></table></div>'


def _items(value) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    return [(str(k), v) for k, v in value]


def _content_html(value, level: int) -> str:
    """A DataFrame/Series (table), a mapping of scalars (key/value table), a mapping or list of
    (heading, frame) pairs (sub-sections), a string (preformatted text)."""
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return table_html(value)
    if isinstance(value, str):
        return f'<pre class="text">{_e(value)}</pre>'
    if isinstance(value, Mapping) and not any(isinstance(v, (pd.DataFrame, pd.Series, Mapping)) for v in value.values()):
        return _mapping_html(value)
    if not isinstance(value, (Mapping, list, tuple)):
        return f"<p>{_e(_fmt(value) if isinstance(value, float) else value)}</p>"
    parts = []
    for heading, sub in _items(value):
        parts.append(f"<h{level}>{_e(heading)}</h{level}>{_content_html(sub, min(level + 1, 6))}")
    return "".join(parts)


def png_data_uri(path: Path | str) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _png_of(path: Path | str) -> Path | None:
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    return path if path.is_file() else None


def _figure(path: Path, caption: str | None, alt: str) -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{png_data_uri(path)}" alt="{_e(alt)}">{cap}</figure>'


def _plots_html(plots, level: int) -> tuple[str, int]:
    """Plot sections: {heading: [paths]} or [paths] or [(caption, path)]; one image per PNG
    (an SVG path is replaced by the PNG beside it, each PNG shown once)."""
    if isinstance(plots, Mapping):
        groups = list(plots.items())
    else:
        groups = [("", plots)]
    out, count, seen = [], 0, set()
    for heading, items in groups:
        figs = []
        for item in items or []:
            caption, path = (item if isinstance(item, tuple) else (None, item))
            png = _png_of(path)
            if png is None or png.resolve() in seen:
                continue
            seen.add(png.resolve())
            figs.append(_figure(png, caption, caption or png.stem))
        if figs:
            count += len(figs)
            head = f"<h{level}>{_e(heading)}</h{level}>" if heading else ""
            out.append(f'{head}<div class="figs">{"".join(figs)}</div>')
    return "".join(out), count


def failed_cells(records: Iterable[dict]) -> pd.DataFrame:
    """One row per failed record: cell label, error (first 2,000 characters), earlier attempts."""
    rows = []
    for r in records:
        if r.get("status") == "ok":
            continue
        label = (r.get("labels") or {}).get("cell") or r.get("label") or r.get("config_hash", "?")
        error = str(r.get("error") or "(no error recorded)")
        rows.append({"cell": label, "error": error[:2000] + ("…" if len(error) > 2000 else ""),
                     "attempts": len(r.get("attempts") or []) + 1})
    return pd.DataFrame(rows, columns=["cell", "error", "attempts"])


def _failed_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="ok">No failed cells.</p>'
    rows = "".join(f'<tr><td>{_e(r.cell)}</td><td class="wrap">{_e(r.error)}</td><td>{_e(r.attempts)}</td></tr>'
                   for r in frame.itertuples())
    return ('<div class="scroll"><table class="data"><thead><tr><th>cell</th><th>error</th><th>attempts</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></div>")


def environments(records: Iterable[dict]) -> pd.DataFrame:
    """The distinct code environments of the records: rows git SHA, dirty, device, then the
    package versions; one column per distinct environment, headed by how many cells used it."""
    envs: OrderedDict[str, dict] = OrderedDict()
    counts: dict[str, int] = {}
    for r in records:
        git = r.get("git") or {}
        env = {"git sha": git.get("sha") or "–", "git dirty": git.get("dirty", "–"),
               "device": r.get("device") or "–"}
        env.update({k: v for k, v in sorted((r.get("versions") or {}).items())})
        key = repr(sorted(env.items(), key=lambda kv: kv[0]))
        if key not in envs:
            envs[key] = env
        counts[key] = counts.get(key, 0) + 1
    if not envs:
        return pd.DataFrame()
    columns = {f"environment {i + 1} ({counts[k]} cells)": v for i, (k, v) in enumerate(envs.items())}
    frame = pd.DataFrame(columns)
    order = ["git sha", "git dirty", "device"]
    frame = frame.reindex(order + [i for i in frame.index if i not in order]).fillna("–").astype(str)
    return frame


def _seeds_arg(seeds: Sequence[int]) -> str:
    seeds = sorted(set(int(s) for s in seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def _recipe_spec(label: str) -> tuple[str, str | None]:
    """(``name[:k=v...]`` without ``ir``, the ``ir`` value) of a recipe label ``name(ir=..,k=v)``."""
    m = re.fullmatch(r"([^()]+)(?:\((.*)\))?", label)
    if not m:
        return label, None
    name, inner = m.group(1), m.group(2) or ""
    ir, rest = None, []
    for part in [p for p in inner.split(",") if p]:
        if part.startswith("ir="):
            ir = part[3:]
        else:
            rest.append(part)
    return ":".join([name, *rest]), ir


def commands_from_records(records: Iterable[dict], out: str | Path | None = None) -> list[str]:
    """``imbench run`` commands that reproduce the recorded cells, rebuilt from the records'
    configurations: one per (track, dataset, recipe, model, profile with its budget unit, image
    size, budget scale, precision and generator steps, subset seeds) and group of methods that
    share their seeds and IRs. Data locations (``--data-root``/``--data-path``) are
    not rebuilt. With ``out``, ``--out OUT --resume`` is appended."""
    per_method: OrderedDict[tuple, dict] = OrderedDict()
    for r in records:
        cfg = r.get("config") or {}
        labels = r.get("labels") or {}
        ds = cfg.get("dataset") or {}
        prof = cfg.get("profile") or {}
        recipe_label = labels.get("recipe") or ""
        spec, ir = _recipe_spec(recipe_label)
        method = labels.get("method") or r.get("method")
        if not method or not spec:
            continue
        method, _, gan_steps = method.partition("@gan_steps=")
        budget = prof.get("budget") or {}
        key = (r.get("track") or cfg.get("track"), ds.get("name") or r.get("dataset"), ds.get("split_seed", 0),
               spec, r.get("model") or cfg.get("model"), prof.get("name") or r.get("profile"),
               budget.get("budget_unit"), ds.get("image_size"), budget.get("budget_scale"), budget.get("precision"),
               gan_steps, ds.get("validation"))
        entry = per_method.setdefault(key, OrderedDict()).setdefault(method, {"seeds": set(), "subset": set(), "irs": []})
        entry["seeds"].add(int(r.get("seed", cfg.get("seed", 0))))
        entry["subset"].add(int(r.get("subset_seed", cfg.get("subset_seed", 0)) or 0))
        if ir is not None and ir not in entry["irs"]:
            entry["irs"].append(ir)
    commands = []
    for (track, dataset, split_seed, spec, model, profile, unit, size, scale, precision, gan_steps, validation), methods \
            in per_method.items():
        groups: OrderedDict[tuple, list[str]] = OrderedDict()
        for method, e in methods.items():
            irs = tuple(sorted(e["irs"], key=lambda v: float(v) if re.fullmatch(r"[0-9.eE+-]+", v) else math.inf))
            groups.setdefault((_seeds_arg(e["seeds"]), _seeds_arg(e["subset"]), irs), []).append(method)
        for (seeds, subset, irs), names in groups.items():
            args = ["imbench", "run", str(track), "--dataset", str(dataset)]
            if split_seed:
                args += ["--split-seed", str(split_seed)]
            args += ["--recipe", spec]
            if irs:
                args += ["--ir", ",".join(irs)]
            args += ["--methods", ",".join(names), "--model", str(model), "--profile", str(profile)]
            if unit and unit != "steps":
                args += ["--budget-unit", str(unit)]
            if size is not None:
                args += ["--image-size", str(size)]
            if validation:
                args += ["--validation", f"{float(validation):g}"]
            if scale is not None:
                args += ["--budget-scale", f"{float(scale):g}"]
            if precision:
                args += ["--precision", str(precision)]
            if gan_steps:
                args += ["--gan-steps", gan_steps]
            args += ["--seeds", seeds]
            if subset != "0":
                args += ["--subset-seed", subset]
            if out is not None:
                args += ["--out", str(out), "--resume"]
            commands.append(shlex.join(args))
    return commands


def _wrap_command(cmd: str, width: int = 100) -> str:
    """A long shell command split before its options into lines ending in `` \\`` (still runnable)."""
    if len(cmd) <= width:
        return cmd
    try:
        tokens = [shlex.quote(t) for t in shlex.split(cmd)]
    except ValueError:
        return cmd
    lines, line = [], ""
    for k, tok in enumerate(tokens):
        value = tokens[k + 1] if tok.startswith("--") and k + 1 < len(tokens) else ""
        if line and tok.startswith("--") and len(line) + len(tok) + len(value) + 2 > width:
            lines.append(line)
            line = ""
        line = f"{line} {tok}" if line else tok
    lines.append(line)
    return " \\\n    ".join(lines)


def _recorded_commands(records: Sequence[dict]) -> list[str]:
    found = []
    for r in records:
        cmd = r.get("command") or r.get("argv")
        if isinstance(cmd, (list, tuple)):
            cmd = shlex.join(str(c) for c in cmd)
        if cmd and cmd not in found:
            found.append(str(cmd))
    return found


def build_html(*, title: str, records: Sequence[dict] = (), run_dirs: Sequence[str | Path] = (),
               tables=None, plots=None, missing=None, commands: Sequence[str] | None = None,
               gallery: Sequence[tuple[str, Path | str]] = (), notes: Sequence[str] = (),
               generated: _dt.datetime | None = None) -> str:
    """The report page as a string (see :func:`write_html` for the arguments)."""
    records = list(records)
    used: set[str] = set()
    toc: list[tuple[str, str]] = []
    sections: list[str] = []

    def section(heading: str, body: str) -> None:
        anchor = _anchor(heading, used)
        toc.append((anchor, heading))
        sections.append(f'<section id="{anchor}"><h2>{_e(heading)}</h2>{body}</section>')

    # header
    n_ok = sum(1 for r in records if r.get("status") == "ok")
    n_failed = len(records) - n_ok
    generated = generated or _dt.datetime.now(_dt.timezone.utc)
    created = sorted(str(r["created"]) for r in records if r.get("created"))
    meta = [("run directories", "<br>".join(_e(d) for d in run_dirs) or "–"),
            ("cells", f'{len(records)}: <span class="ok">{n_ok} ok</span>, '
                      f'<span class="{"bad" if n_failed else "ok"}">{n_failed} failed</span>')]
    if created:
        meta.append(("cells recorded", _e(created[0] if created[0] == created[-1] else f"{created[0]} … {created[-1]}")))
    meta.append(("report generated", _e(generated.strftime("%Y-%m-%d %H:%M:%S %Z").strip())))
    header = (f"<h1>{_e(title)}</h1><table class=\"meta\">"
              + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in meta) + "</table>"
              + "".join(f'<p class="note">{_e(n)}</p>' for n in notes))

    for heading, value in _items(tables):
        section(heading, _content_html(value, 3))
    if plots:
        groups = plots.items() if isinstance(plots, Mapping) else [("Plots", plots)]
        for heading, items in groups:
            body, count = _plots_html({"": items}, 3)
            if count:
                section(heading, body)
    if records or n_failed:
        section(f"Failed cells ({n_failed})", _failed_html(failed_cells(records)))
    if missing is not None:
        if isinstance(missing, (pd.DataFrame, pd.Series)):
            n = len(missing)
            body = table_html(missing) if n else '<p class="ok">No missing cells.</p>'
        else:
            missing = [str(m) for m in missing]
            n = len(missing)
            body = ("<ul>" + "".join(f"<li>{_e(m)}</li>" for m in missing) + "</ul>") if n else \
                '<p class="ok">No missing cells.</p>'
        section(f"Missing cells ({n})", body)
    cmds = list(commands) if commands is not None else _recorded_commands(records)
    note = ""
    if commands is None and not cmds and records:
        cmds = commands_from_records(records, run_dirs[0] if len(run_dirs) == 1 else None)
        note = ('<p class="note">Rebuilt from the records\' configurations (the records do not keep the command '
                "line); data locations (<code>--data-root</code> / <code>--data-path</code>) are not included.</p>")
    if cmds:
        section("Commands", note + '<pre class="cmd">' + "\n".join(f"<span>{_e(_wrap_command(c))}</span>" for c in cmds)
                + "</pre>")
    env = environments(records)
    if not env.empty:
        section("Versions and git", table_html(env, index=True))
    figs = []
    for label, path in gallery or []:
        png = _png_of(path)
        if png is not None:
            figs.append(_figure(png, label, label))
    if figs:
        section("Samples of the generative methods",
                '<p class="note">One grid per method and block (its first seed): each row a class, real '
                'examples on the left, generated ones on the right.</p>'
                f'<div class="figs gallery">{"".join(figs)}</div>')

    nav = "<nav>" + "\n".join(f'<a href="#{a}">{_e(h)}</a>' for a, h in toc) + "</nav>" if toc else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
            f"{header}{nav}{''.join(sections)}</main></body></html>\n")


def write_html(path: Path | str, *, title: str, records: Sequence[dict] = (), run_dirs: Sequence[str | Path] = (),
               tables=None, plots=None, missing=None, commands: Sequence[str] | None = None,
               gallery: Sequence[tuple[str, Path | str]] = (), notes: Sequence[str] = (),
               generated: _dt.datetime | None = None) -> Path:
    """Write the self-contained report page to ``path``; returns ``path``.

    - ``title``: page title; ``run_dirs``: shown in the header;
    - ``records``: the run records: cell counts (ok / failed), the failed-cells table, the
      versions / git SHAs / devices (deduplicated), the commands when none are given;
    - ``tables``: ``{heading: value}`` or ``[(heading, value)]``, in order; a value is a DataFrame
      or Series (one table), a mapping of scalars (a key / value table, e.g. Friedman statistics),
      a nested ``{sub-heading: DataFrame}`` / list of pairs (e.g. one leaderboard per block) or a
      string (preformatted text);
    - ``plots``: ``{heading: [paths]}`` (e.g. :func:`plots.all_plots`) or a list of paths or of
      ``(caption, path)``; PNGs are embedded (an SVG path stands for the PNG beside it);
    - ``missing``: DataFrame or list of strings (a section only when given);
    - ``commands``: the command lines that made the run; by default the records' own
      (``command``/``argv``) or, failing that, rebuilt by :func:`commands_from_records`;
    - ``gallery``: ``[(label, png path)]`` (e.g. :func:`plots.sample_gallery`);
    - ``notes``: paragraphs under the header.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(title=title, records=records, run_dirs=run_dirs, tables=tables, plots=plots,
                               missing=missing, commands=commands, gallery=gallery, notes=notes,
                               generated=generated), encoding="utf-8")
    return path
