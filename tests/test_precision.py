"""Precision (fp32 / bf16 / auto) and memory layout of the benchmarked model."""
from __future__ import annotations

import pytest
import torch

from imbench.benchmarks.contract.records import read_records
from imbench.tasks import precision

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10", "--seeds", "0", "--methods", "erm"]


@pytest.mark.parametrize("amx,avx512bf16,want", [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")])
def test_auto_is_bf16_only_where_the_cpu_has_it_natively(monkeypatch, amx, avx512bf16, want):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512bf16, raising=False)
    assert precision.resolve("auto", "cpu") == want
    assert precision.resolve("fp32", "cpu") == "fp32" and precision.resolve("bf16", "cpu") == "bf16"
    cell = {"profile": {"name": "quick", "budget": {"precision": "auto", "lr": 0.1}}}
    assert precision.resolve_cells([cell], "cpu")[0]["profile"]["budget"] == {"precision": want, "lr": 0.1}
    assert cell["profile"]["budget"]["precision"] == "auto"  # the planned cell is not changed in place


def test_bf16_runs_the_forward_in_bf16_and_is_its_own_cell(cli, tmp_path):
    seen = []
    conv = torch.nn.Conv2d(1, 1, 3)
    hook = conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with precision.autocast({"precision": "bf16"}, "cpu"):
        conv(torch.rand(1, 1, 5, 5))
    with precision.autocast({}, "cpu"):
        conv(torch.rand(1, 1, 5, 5))
    hook.remove()
    assert seen == [torch.bfloat16, torch.float32]
    for p in ("bf16", "fp32"):
        assert cli("run", "classification", "--precision", p, "--out", tmp_path / p, *SMOKE)[0] == 0
    bf16, fp32 = read_records(tmp_path / "bf16")[0], read_records(tmp_path / "fp32")[0]
    assert bf16["training"]["precision"] == "bf16" and fp32["training"]["precision"] == "fp32"
    assert bf16["config"]["profile"]["budget"]["precision"] == "bf16"
    assert bf16["config_hash"] != fp32["config_hash"]
    assert bf16["metrics"] != fp32["metrics"]  # other arithmetic, other numbers


def test_auto_is_recorded_as_the_precision_it_ran_in(cli, tmp_path):
    assert cli("run", "classification", "--precision", "auto", "--out", tmp_path / "o", *SMOKE)[0] == 0
    rec = read_records(tmp_path / "o")[0]
    want = precision.resolve("auto", "cpu")
    assert rec["config"]["profile"]["budget"]["precision"] == want == rec["training"]["precision"]


@pytest.mark.parametrize("flag", [["--precision", "fp16"], ["--precision", "half"]])
def test_bad_precision_is_a_usage_error(cli, tmp_path, flag):
    code, _, err = cli("run", "classification", *flag, "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and "precision" in err and not (tmp_path / "o").exists()


def test_channels_last_is_the_same_model_in_another_memory_order():
    from imbench.tasks.classification.models import build_model
    from imbench.tasks.classification.train import predict

    torch.manual_seed(0)
    model = build_model("small-cnn", in_channels=1, num_classes=10, image_size=28, mean=[0.5], std=[0.5]).eval()
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
        layout = precision.memory_layout(model, "cpu")
        got = model(x.contiguous(memory_format=layout))
    assert layout == torch.channels_last and model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    images = (x * 255).to(torch.uint8)
    assert (predict(model, images, torch.device("cpu")) == predict(model, images, torch.device("cpu"), batch_size=7)).all()


def test_perf_prints_imbench_beside_the_bare_loop(cli):
    code, out, _ = cli("perf", "classification", "--precision", "fp32")
    assert code == 0
    head, row = out.splitlines()[1:3]
    assert head.split()[:4] == ["track", "model", "precision", "layout"] and "bare" in head and "ratio" in head
    fields = row.split()
    assert fields[:4] == ["classification", "small-cnn", "fp32", "channels_last"]
    assert int(fields[4]) > 0 and all(float(v) > 0 for v in fields[5:])


@pytest.mark.parametrize("args", [["perf", "--precision", "fp16"], ["perf", "--threads", "0"], ["perf", "tracking"]])
def test_perf_refuses_bad_input(cli, args):
    code, _, err = cli(*args)
    assert code == 2 and err.startswith("imbench: error:")


def test_parity_table_pairs_bf16_with_fp32_by_seed(cli, tmp_path):
    from imbench.results.parity import main, parity_table

    out = tmp_path / "o"
    for p in ("fp32", "bf16"):
        args = ["run", "classification", "--precision", p, "--out", out, "--profile", "smoke", "--quiet", "--ir", "10",
                "--seeds", "0,1", "--methods", "erm"]
        assert cli(*args)[0] == 0
    recs = read_records(out)
    table = parity_table(recs)
    assert len(table) == 1 and table.loc[0, "pairs"] == 2 and table.loc[0, "block"] == "digits / longtail(ir=10) / small-cnn"
    by = {(r["seed"], r["config"]["profile"]["budget"]["precision"]): r["metrics"]["balanced_accuracy"] for r in recs}
    want = sum(by[(s, "bf16")] - by[(s, "fp32")] for s in (0, 1)) / 2
    assert table.loc[0, "delta (bf16 - fp32)"] == pytest.approx(want)
    assert main([str(out)]) == 0 and main([]) == 2
