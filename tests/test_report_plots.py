"""Report plots (imbench.results.plots) and the self-contained HTML page (imbench.results.html),
on small hand-made tidy tables and records (no run directory needed)."""
from __future__ import annotations

import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from imbench.results import html as H
from imbench.results import plots as P

# A made-up track: nothing in results/ may depend on the classification track's names.
INFO = {"headline": "score", "metrics": ["score", "fid", "cas"], "per_class": "per_class_score",
        "lower_is_better": ["fid"]}
COLUMNS = ["track", "dataset", "recipe", "model", "profile", "method", "family", "setting", "block", "metric",
           "mean", "std", "n_seeds", "n_failed", "ci95_lo", "ci95_hi", "delta_vs_erm", "n_pairs", "p_vs_erm",
           "rank", "fewer_seeds"]


def tidy_row(method, metric, mean, *, recipe="longtail(ir=10)", family="baseline", ci=0.02, delta=0.0,
             n_seeds=3, fewer=False, block=None):
    lo, hi = (math.nan, math.nan) if ci is None else (mean - ci, mean + ci)
    return {"track": "toy", "dataset": "dots", "recipe": recipe, "model": "tiny", "profile": "smoke",
            "method": method, "family": family, "setting": f"s-{method}-{recipe}", "block": block or f"b-{recipe}",
            "metric": metric, "mean": mean, "std": 0.01, "n_seeds": n_seeds, "n_failed": 0, "ci95_lo": lo,
            "ci95_hi": hi, "delta_vs_erm": delta, "n_pairs": n_seeds, "p_vs_erm": 0.5, "rank": 1.0,
            "fewer_seeds": fewer}


@pytest.fixture
def tidy() -> pd.DataFrame:
    rows = []
    for recipe, shift in (("longtail(ir=10)", 0.0), ("longtail(ir=50)", -0.1)):
        rows += [tidy_row("erm", "score", 0.80 + shift, recipe=recipe),
                 tidy_row("ros", "score", 0.85 + shift, recipe=recipe, delta=0.05, n_seeds=2, fewer=True),
                 tidy_row("focal:gamma=1", "score", 0.83 + shift, recipe=recipe, delta=0.03, ci=None, n_seeds=1,
                          fewer=True),
                 tidy_row("cgan", "score", 0.78 + shift, recipe=recipe, family="gan", delta=-0.02),
                 tidy_row("cgan", "fid", 40.0, recipe=recipe, family="gan", ci=5.0, delta=math.nan),
                 tidy_row("cgan", "cas", 0.6, recipe=recipe, family="gan", delta=math.nan),
                 tidy_row("cvae", "score", 0.82 + shift, recipe=recipe, family="gan", delta=0.02),
                 tidy_row("cvae", "fid", 20.0, recipe=recipe, family="gan", ci=3.0, delta=math.nan),
                 tidy_row("cvae", "cas", 0.8, recipe=recipe, family="gan", delta=math.nan),
                 tidy_row("erm", "other", 0.5, recipe=recipe)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame


def record(method, seed, *, ir=10, family="baseline", blend=None, status="ok", error=None, score=0.8,
           total_s=2.0, extras=None, samples_png=None, sha="abc123"):
    params = {} if blend is None else {"blend": blend}
    label = method if blend in (None, "full") else f"{method}:blend={blend}"
    config = {"track": "toy", "dataset": {"name": "dots", "split_seed": 0},
              "recipe": {"name": "longtail", "params": {"ir": float(ir)}},
              "method": {"name": method, "params": params}, "model": "tiny",
              "profile": {"name": "smoke", "budget": {"epochs": 1, "gan": {"steps": 3}}},
              "subset_seed": 0, "seed": seed}
    ex = dict(extras or {})
    if samples_png is not None:
        ex["samples_png"] = str(samples_png)
    metrics = {"score": score, "per_class_score": [1.0, 0.9, None if seed == 0 else 0.5]} if status == "ok" else {}
    return {"status": status, "error": error, "attempts": [], "track": "toy", "track_info": INFO,
            "labels": {"dataset": "dots", "recipe": f"longtail(ir={ir})", "method": label,
                       "cell": f"dots/longtail(ir={ir})/{label}/tiny/smoke/s{seed}"},
            "model": "tiny", "profile": "smoke", "method_family": family, "seed": seed, "subset_seed": 0,
            "config": config, "metrics": metrics, "timings": {"total_s": total_s, "train_s": total_s / 2},
            "extras": ex, "class_counts": {"class_names": ["a", "b", "c"], "minority": [2], "recipe": [50, 20, 5]},
            "versions": {"python": "3.11", "imbench": "0.1.0"}, "git": {"sha": sha, "dirty": False},
            "device": "cpu", "created": f"2026-01-0{seed + 1}T00:00:00+00:00"}


@pytest.fixture
def records() -> list[dict]:
    recs = []
    for ir in (10, 50):
        for seed in (0, 1):
            recs.append(record("erm", seed, ir=ir, score=0.8, total_s=1.0))
            recs.append(record("ros", seed, ir=ir, score=0.85, total_s=1.2))
            recs.append(record("cgan", seed, ir=ir, family="gan", score=0.78, total_s=5.0,
                               extras={"generator_cache": "miss", "generator_train_s": 3.0, "cas_train_s": 1.0}))
    return recs


def assert_written(paths: list[Path], figures: int) -> None:
    assert len(paths) == 2 * figures
    assert sorted(p.suffix for p in paths) == [".png"] * figures + [".svg"] * figures
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths if p.suffix == ".png")


def no_open_pyplot_figures() -> bool:
    plt = sys.modules.get("matplotlib.pyplot")
    return plt is None or plt.get_fignums() == []


# ----------------------------------------------------------------------------- pure helpers

def test_pareto_front_hand_made():
    costs = [1.0, 2.0, 3.0, 4.0, 2.5, 1.0, math.nan, 4.0]
    gains = [0.0, 0.5, 0.4, 0.9, 0.5, -0.1, 2.0, 0.9]
    # 5 is dominated by 0 (same cost, less gain), 2 by 1, 4 by 1 (same gain, dearer), 6 is NaN;
    # 3 and 7 are exact duplicates: both stay
    assert P.pareto_front(costs, gains) == [0, 1, 3, 7]
    assert P.pareto_front([], []) == []
    assert P.pareto_front([3.0], [0.1]) == [0]
    # a strictly better point dominates everything
    assert P.pareto_front([1, 2, 3], [5, 4, 3]) == [0]


def test_parse_ir_and_blend():
    assert P.parse_ir("longtail(ir=50)") == 50.0
    assert P.parse_ir("step(ir=10,mu=0.3)") == 10.0
    assert P.parse_ir("longtail(class_order=random,ir=2.5)") == 2.5
    assert P.parse_ir("counts") is None and P.parse_ir("binary(fair=1)") is None
    assert P._without_ir("step(ir=10,mu=0.3)") == "step(mu=0.3)" and P._without_ir("longtail(ir=50)") == "longtail"
    assert P._blend_value("full") == 1.0 and P._blend_value(0.25) == 0.25 and P._blend_value(None) is None
    assert P._find_param({"deepsmote": {"blend": 0.5, "k": 5}, "ldam-drw": {"s": 30}}, "blend") == 0.5


def test_cell_cost_counts_cached_generators_and_leaves_out_evaluation():
    fresh = record("cgan", 0, total_s=10.0, extras={"generator_cache": "miss", "generator_train_s": 4.0,
                                                     "cas_train_s": 2.0})
    cached = record("cgan", 1, total_s=6.0, extras={"generator_cache": "hit", "generator_train_s": 0.0,
                                                     "generator_train_s_original": 4.0, "cas_train_s": 2.0})
    assert P.cell_cost(fresh) == pytest.approx(8.0)
    assert P.cell_cost(cached) == pytest.approx(8.0)
    assert P.cell_cost(cached, exclude=()) == pytest.approx(10.0)
    assert P.cell_cost(record("erm", 0, total_s=1.5)) == pytest.approx(1.5)


# ----------------------------------------------------------------------------- plots

def test_ci_bars(tidy, tmp_path):
    paths = P.ci_bars(tidy, "score", tmp_path, lower_is_better=INFO["lower_is_better"])
    assert_written(paths, 2)  # one per block
    assert P.ci_bars(tidy, "no-such-metric", tmp_path) == []
    assert P.ci_bars(tidy.iloc[0:0], "score", tmp_path) == []
    assert no_open_pyplot_figures()


def test_metric_vs_ir(tidy, tmp_path):
    assert_written(P.metric_vs_ir(tidy, "score", tmp_path), 1)
    one_ir = tidy[tidy["recipe"] == "longtail(ir=10)"]
    assert P.metric_vs_ir(one_ir, "score", tmp_path / "none") == []
    no_ir = tidy.assign(recipe=tidy["recipe"].str.replace(r"ir=(\d+)", r"k=\1", regex=True))
    assert P.metric_vs_ir(no_ir, "score", tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


def test_quality_vs_gain(tidy, tmp_path):
    assert_written(P.quality_vs_gain(tidy, "score", tmp_path, lower_is_better=["fid"]), 2)
    only = P.quality_vs_gain(tidy, "score", tmp_path / "fid", quality=["fid"])
    assert_written(only, 2)
    baselines = tidy[tidy["family"] != "gan"]
    assert P.quality_vs_gain(baselines, "score", tmp_path / "none") == []


def test_per_class_heatmap(records, tmp_path):
    paths = P.per_class_heatmap(records, None, tmp_path)  # the metric from the records' track_info
    assert_written(paths, 2)
    assert all("per_class_score" in p.name.replace("-", "_") for p in paths)
    assert P.per_class_heatmap(records, "absent_per_class", tmp_path / "none") == []
    assert P.per_class_heatmap([], None, tmp_path / "none") == []


def test_cost_vs_gain(records, tidy, tmp_path):
    tidy = tidy.assign(recipe=tidy["recipe"])  # labels match the records': dots / longtail(ir=..) / tiny / smoke
    assert_written(P.cost_vs_gain(records, tidy, "score", tmp_path), 2)
    assert P.cost_vs_gain(records, tidy, "no-such-metric", tmp_path / "none") == []
    assert P.cost_vs_gain([], tidy, "score", tmp_path / "none") == []


def test_metric_vs_blend(records, tmp_path):
    assert P.metric_vs_blend(records, None, tmp_path / "none") == []  # no blend sweep
    sweep = records + [record("cgan", s, ir=10, family="gan", blend=b, score=0.7 + 0.1 * b)
                       for s in (0, 1) for b in (0.25, 0.5)]
    sweep = [r if r["labels"]["method"] != "cgan" else {**r, "config": {**r["config"], "method": {
        "name": "cgan", "params": {"blend": "full"}}}} for r in sweep]
    assert_written(P.metric_vs_blend(sweep, None, tmp_path), 1)  # only the IR-10 block sweeps blend


def test_sample_gallery(records, tmp_path):
    from PIL import Image

    pngs = {}
    for seed in (0, 1):
        pngs[seed] = tmp_path / f"cgan_s{seed}.png"
        Image.new("RGB", (8, 4), (seed * 100, 0, 0)).save(pngs[seed])
    recs = [dict(r) for r in records]
    for r in recs:
        if r["labels"]["method"] == "cgan" and r["labels"]["recipe"] == "longtail(ir=10)":
            r["extras"] = {**r["extras"], "samples_png": str(pngs[r["seed"]])}
        if r["labels"]["method"] == "cgan" and r["labels"]["recipe"] == "longtail(ir=50)":
            r["extras"] = {**r["extras"], "samples_png": str(tmp_path / "missing.png")}
    gallery = P.sample_gallery(recs)
    assert gallery == [(gallery[0][0], pngs[0])]
    assert "cgan" in gallery[0][0] and "longtail(ir=10)" in gallery[0][0]
    assert P.sample_gallery(records) == []


def test_all_plots_with_the_aggregator(records, tmp_path):
    """The plots accept what ``aggregate.tidy`` makes of the records (labels and blocks match)."""
    from imbench.results import aggregate

    sections = P.all_plots(records, aggregate.tidy(records), tmp_path)
    assert sections and all(paths for paths in sections.values())
    names = " ".join(p.name for paths in sections.values() for p in paths)
    for kind in ("ci-bars", "metric-vs-ir", "per-class", "cost-vs-gain"):
        assert kind in names
    assert no_open_pyplot_figures()


# ----------------------------------------------------------------------------- html

class TagChecker(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.imgs, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs).get("src", ""))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def test_html_report_is_self_contained_and_escaped(records, tidy, tmp_path):
    plots = P.all_plots(records, tidy.assign(track="toy"), tmp_path / "plots", info=INFO)
    n_plots = sum(1 for paths in plots.values() for p in paths if p.suffix == ".png")
    sample = tmp_path / "sample.png"
    from PIL import Image

    Image.new("RGB", (6, 6)).save(sample)
    failed = record("ros", 2, status="failed", error="boom <script>alert('x')</script> & more", sha="def456")
    recs = records + [failed]
    boards = {"dots / longtail(ir=10)": tidy[tidy["metric"] == "score"].head(3)}
    page = H.write_html(tmp_path / "report.html", title="Report <of> toy", records=recs, run_dirs=[tmp_path / "run"],
                        tables={"Pivot": tidy.pivot_table(index="method", columns="recipe", values="mean"),
                                "Leaderboard per block": boards,
                                "Friedman": {"chi2_f": 3.5, "p": 0.06, "reason": None}},
                        plots=plots, missing=["dots/longtail(ir=50)/focal/tiny/smoke/s1"],
                        gallery=[("cgan <seed 0>", sample)])
    text = page.read_text(encoding="utf-8")
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert text.startswith("<!DOCTYPE html>")
    # every plot and the gallery image embedded, nothing else referenced
    assert text.count("data:image/png;base64,") == n_plots + 1 == len(checker.imgs)
    assert all(src.startswith("data:image/png;base64,") for src in checker.imgs)
    assert "http://" not in text and "https://" not in text
    assert "script" not in checker.tags and "link" not in checker.tags
    # escaped text
    assert "<script>" not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "Report &lt;of&gt; toy" in text and "cgan &lt;seed 0&gt;" in text
    # sections
    for heading in ("Pivot", "Leaderboard per block", "Friedman", "Failed cells (1)", "Missing cells (1)",
                    "Commands", "Versions and git", "Samples of the generative methods"):
        assert f">{heading}</h" in text, heading
    assert "13 cells" not in text and "12 ok" in text and "1 failed" in text
    # two code versions: two environment columns
    assert "abc123" in text and "def456" in text and "environment 2 (1 cells)" in text


def test_commands_from_records(records):
    cmds = H.commands_from_records(records + [record("smote+ldam-drw", s, ir=50) for s in (0, 1)], out="runs/x")
    assert cmds == [
        "imbench run toy --dataset dots --recipe longtail --ir 10,50 --methods erm,ros,cgan --model tiny "
        "--profile smoke --seeds 0,1 --out runs/x --resume",
        "imbench run toy --dataset dots --recipe longtail --ir 50 --methods smote+ldam-drw --model tiny "
        "--profile smoke --seeds 0,1 --out runs/x --resume",
    ]
    page = H.build_html(title="t", records=records)
    assert "Rebuilt from the records" in page and "--methods erm,ros,cgan" in page
    given = H.build_html(title="t", records=records, commands=["imbench run --seeds 0-2"])
    assert "imbench run --seeds 0-2" in given and "Rebuilt" not in given


def test_html_tables_and_empty_report(tmp_path):
    frame = pd.DataFrame({"method": ["a<b>", "c"], "rank": [1.0, 2.0], "mean": [0.81234, math.nan]})
    page = H.build_html(title="empty", tables=[("T", frame)])
    assert "a&lt;b&gt;" in page and ">0.812<" in page and ">1<" in page and "–" in page
    assert "data:image" not in page and "Failed cells" not in page
    checker = TagChecker()
    checker.feed(page)
    assert checker.errors == [] and checker.stack == []
    assert re.search(r"0 ok", H.build_html(title="x", records=[record("erm", 0, status="failed", error="e")]))
