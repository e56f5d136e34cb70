"""The machinery every generative oversampler shares: blend, cache, failure checks, quality."""
from __future__ import annotations

import pytest
import torch

from imbench.benchmarks.contract.records import read_records
from imbench.gans.base import CollapseError, deficits, seeded_streams
from imbench.benchmarks.contract.track import DivergenceError
from imbench.testing import tiny_context, tiny_imageset

from .plugin_fixtures import NoisyMeans

PLUGIN = "tests.plugin_fixtures:NoisyMeans"
SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10", "--seeds", "0", "--plugin", PLUGIN]


def _ctx(train, tmp_path=None, seed=0):
    ctx = tiny_context(train, seed=seed)
    ctx.budget = {"gan": {"steps": 5, "batch_size": 8, "lr": 1e-3}}
    ctx.cache_dir = tmp_path
    ctx.data_key = {"fixture": "tiny"}
    return ctx


def test_deficits_full_and_fraction():
    assert deficits([10, 4, 1], "full") == [0, 6, 9]
    assert deficits([10, 4, 1], "0.5") == [0, 3, 4]


def test_prepare_fills_every_class_and_flags_synthetic():
    train = tiny_imageset()
    out = NoisyMeans().prepare(train, _ctx(train))
    assert out.counts() == [24, 24, 24]
    assert torch.equal(out.images[: len(train)], train.images)
    assert out.synthetic.sum() == 16 + 21 and not out.synthetic[: len(train)].any()


def test_cache_hit_performs_no_training_and_gives_the_same_samples(tmp_path, monkeypatch):
    train = tiny_imageset()
    ctx1 = _ctx(train, tmp_path)
    first = NoisyMeans().prepare(train, ctx1)
    assert ctx1.record["generator_cache"] == "miss"
    assert len(list((tmp_path / "generators").glob("noisy-means-*.pt"))) == 1

    def no_training(*a, **k):
        raise AssertionError("fit was called on a cache hit")

    monkeypatch.setattr(NoisyMeans, "fit", no_training)
    ctx2 = _ctx(train, tmp_path)
    second = NoisyMeans().prepare(train, ctx2)
    assert ctx2.record["generator_cache"] == "hit" and ctx2.record["generator_train_s"] == 0.0
    # the updates the cached generator was trained with are named on a hit too
    assert ctx2.record["generator_updates"] == ctx1.record["generator_updates"] == ctx1.budget["gan"]["steps"]
    assert torch.equal(first.images, second.images)
    # blend changes how many images are drawn, not the generator: still a hit
    ctx3 = _ctx(train, tmp_path)
    NoisyMeans(blend="0.5").prepare(train, ctx3)
    assert ctx3.record["generator_cache"] == "hit"


def test_cache_key_depends_on_seed_and_data(tmp_path):
    train = tiny_imageset()
    NoisyMeans().prepare(train, _ctx(train, tmp_path, seed=0))
    ctx = _ctx(train, tmp_path, seed=1)
    NoisyMeans().prepare(train, ctx)
    assert ctx.record["generator_cache"] == "miss"
    ctx = _ctx(train, tmp_path, seed=0)
    ctx.data_key = {"fixture": "other"}
    NoisyMeans().prepare(train, ctx)
    assert ctx.record["generator_cache"] == "miss"


def test_same_seed_same_samples_other_seed_other_samples():
    train = tiny_imageset()
    a = NoisyMeans().prepare(train, _ctx(train, seed=0))
    b = NoisyMeans().prepare(train, _ctx(train, seed=0))
    c = NoisyMeans().prepare(train, _ctx(train, seed=1))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_collapsed_generator_is_an_error():
    train = tiny_imageset()
    with pytest.raises(CollapseError, match="collapsed for class 1"):
        NoisyMeans(constant=True).prepare(train, _ctx(train))


def test_non_finite_loss_is_a_divergence():
    with pytest.raises(DivergenceError, match="d loss became nan at step 7"):
        NoisyMeans.check_finite("x", 7, g=torch.tensor(1.0), d=torch.tensor(float("nan")))


def test_bad_blend_is_a_usage_error(cli, tmp_path):
    code, _, err = cli("run", "classification", "--methods", "noisy-means", "--blend", "1.5", "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and "blend" in err and not (tmp_path / "o").exists()


def test_cell_records_quality_grid_and_cache(cli, tmp_path):
    out = tmp_path / "o"
    assert cli("run", "classification", "--methods", "noisy-means", "--out", out, *SMOKE)[0] == 0
    (rec,) = read_records(out)
    assert rec["status"] == "ok", rec["error"]
    assert rec["method_family"] == "gan" and "gan" in rec["config"]["profile"]["budget"]
    counts = rec["class_counts"]
    assert counts["trained_on"] == [max(counts["recipe"])] * 10
    assert counts["synthetic"] == [max(counts["recipe"]) - n for n in counts["recipe"]]
    m = rec["metrics"]
    for key in ("fid_mean", "kid_mean", "gan_test_mean", "fid_per_class", "gan_test_per_class", "n_fake_per_class",
                "cas_reference_mean", "cas_reference_per_class"):
        assert key in m
    assert m["fid_per_class"][0] is None  # the head class gets no synthetic images
    # CAS on the cell's test split: noisy-means samples every class (the head class too)
    assert m["cas_classes"] == list(range(10)) and None not in m["cas_per_class"]
    assert m["cas_train_per_class"] == [max(counts["recipe"])] * 10 and rec["extras"]["cas_train_s"] > 0
    assert rec["extras"]["generator_cache"] == "miss"
    png = rec["extras"]["samples_png"]
    assert png.endswith(".png") and (out / "samples").exists()
    from pathlib import Path
    assert Path(png).exists()
    # a second suite with the same cell in another out dir, same cache: a hit
    assert cli("run", "classification", "--methods", "noisy-means", "--out", tmp_path / "o2", "--cache-dir", tmp_path / "cache",
               *SMOKE)[0] == 0
    assert cli("run", "classification", "--methods", "noisy-means", "--out", tmp_path / "o3", "--cache-dir", tmp_path / "cache",
               *SMOKE)[0] == 0
    (hit,) = read_records(tmp_path / "o3")
    assert hit["extras"]["generator_cache"] == "hit"
    assert hit["metrics"]["balanced_accuracy"] == read_records(tmp_path / "o2")[0]["metrics"]["balanced_accuracy"]


def test_blend_fraction_and_no_cache_from_the_cli(cli, tmp_path):
    out = tmp_path / "o"
    assert cli("run", "classification", "--methods", "noisy-means,erm", "--blend", "0.5", "--no-cache", "--out", out, *SMOKE)[0] == 0
    recs = {r["method"]: r for r in read_records(out)}
    rec = recs["noisy-means"]
    assert rec["method_params"]["blend"] == "0.5"
    assert rec["extras"]["generator_cache"] == "off"
    top = max(rec["class_counts"]["recipe"])
    assert rec["class_counts"]["synthetic"] == [int(0.5 * (top - n)) for n in rec["class_counts"]["recipe"]]
    assert "gan" not in recs["erm"]["config"]["profile"]["budget"]
    assert not (tmp_path / "cache").exists()


def test_seeded_streams_repeat_for_a_seed_and_restore_the_callers_stream():
    torch.manual_seed(7)
    expected_after = torch.rand(3)
    torch.manual_seed(7)
    with seeded_streams(123, "cpu"):
        inside = torch.rand(4)
    with seeded_streams(123, "cpu"):
        again = torch.rand(4)
    assert torch.equal(inside, again)  # the block starts from its seed every time
    assert torch.equal(torch.rand(3), expected_after)  # the caller's stream is where it was
