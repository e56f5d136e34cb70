"""Performance benchmarks (pytest-benchmark), skipped by the fast suite.

Run: python -m pytest tests/test_perf.py -o addopts="" --benchmark-only
"""
from __future__ import annotations

import pytest

from imbench.benchmarks.plugins import METHODS, load_methods
from imbench.benchmarks.suite import Overrides, expand
from imbench.data_recipes.recipes import apply_recipe
from imbench.data_recipes.sources import load_source
from imbench.tasks import get_track
from imbench.testing import tiny_context

load_methods()


def _cell(method: str, profile: str = "quick", dataset: str = "digits", ir: float = 50.0) -> dict:
    suite = {"name": "perf", "grids": [{"track": "classification", "datasets": [dataset],
             "recipes": [{"name": "longtail", "ir": ir}], "methods": [method], "models": ["small-cnn"],
             "seeds": [0], "profile": profile}]}
    return expand(suite, Overrides())[0]


@pytest.mark.parametrize("method", ["erm", "ros"])
def test_quick_digits_cell(benchmark, method):
    """One quick-profile cell on digits longtail IR 50 (the unit of `imbench run`)."""
    cell = _cell(method)
    track = get_track("classification")
    outcome = benchmark.pedantic(lambda: track.run(cell, METHODS.get(method)(), {"device": "cpu"}, False),
                                 rounds=2, iterations=1)
    assert outcome.metrics["balanced_accuracy"] > 0.5


@pytest.mark.parametrize("name", ["smote", "ros"])
def test_prepare_on_real_mnist_lt(benchmark, shared_data, name):
    """Data-level preparation on the real MNIST split, longtail IR 100 (SMOTE on 784-d pixels
    versus index-sampled ROS)."""
    imb = apply_recipe(load_source("mnist", data_root=str(shared_data)), "longtail", {"ir": 100}, 0)
    method = METHODS.get(name)()
    out = benchmark.pedantic(lambda: method.prepare(imb.train, tiny_context(imb.train)), rounds=3, iterations=1)
    assert out.counts() == [max(imb.counts)] * 10


@pytest.mark.parametrize("recipe", ["rare-class", "occlusion"])
def test_quick_detection_cell(benchmark, recipe):
    """One quick-profile detection cell (digit-scenes, fcos, erm): the unit of the detection grid
    of `imbench run`; 90 of them on 2 workers are its share of the 15-minute bare run."""
    suite = {"name": "perf", "grids": [{"track": "detection", "datasets": ["digit-scenes"],
             "recipes": [{"name": recipe, "ir": 10}], "methods": ["erm"], "models": ["fcos"],
             "seeds": [0], "profile": "quick"}]}
    cell = expand(suite, Overrides())[0]
    track = get_track("detection")
    outcome = benchmark.pedantic(lambda: track.run(cell, METHODS.get("erm")(), {"device": "cpu"}, False),
                                 rounds=2, iterations=1)
    assert outcome.metrics["ap"] > 0.05


@pytest.mark.parametrize("method", ["erm", "lovasz"])
def test_quick_segmentation_cell(benchmark, method):
    """One quick-profile segmentation cell (digit-scenes at 32 px, rare-pixels IR 10, unet): the unit
    of the segmentation grid of `imbench run` (96 cells on 2 workers; erm is the cheapest kind,
    lovasz the costliest loss; the GAN methods' extra seconds are in their records' timings)."""
    suite = {"name": "perf", "grids": [{"track": "segmentation", "datasets": ["digit-scenes"],
             "recipes": [{"name": "rare-pixels", "ir": 10}], "methods": [method], "models": ["unet"],
             "seeds": [0], "profile": "quick", "image_size": 32}]}
    cell = expand(suite, Overrides())[0]
    track = get_track("segmentation")
    outcome = benchmark.pedantic(lambda: track.run(cell, METHODS.get(method)(), {"device": "cpu"}, False),
                                 rounds=2, iterations=1)
    assert outcome.metrics["miou"] > 0.1


@pytest.mark.parametrize("command", ["python -c pass", "imbench ls methods", "imbench --help"])
def test_cli_answers_at_once(benchmark, command):
    """The CLI as a whole process (what a user waits for) beside a bare Python start: ``ls`` and
    ``--help`` import no torch (tests/test_cli_fast.py checks that; this measures it)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("imbench")
    argv = [sys.executable, "-c", "pass"] if command.startswith("python") else [str(script), *command.split()[1:]]
    done = benchmark.pedantic(lambda: subprocess.run(argv, capture_output=True, check=True), rounds=10,
                              iterations=1, warmup_rounds=1)
    assert done.returncode == 0


@pytest.mark.parametrize("model", ["small-cnn", "unet"])
def test_layout_and_precision_speed(benchmark, model):
    """One training step of the track's conv model at quick's batch size, in the four layout x
    precision settings side by side; prints each one's speed-up over NCHW fp32 (the ratio is the
    result: channels_last and bf16 are the defaults they justify)."""
    import time

    import torch
    import torch.nn.functional as F

    from imbench.tasks.classification.models import build_model
    from imbench.tasks.precision import autocast
    from imbench.tasks.segmentation.models import build_segmenter

    if model == "unet":
        x, y = torch.rand(16, 1, 32, 32), torch.randint(0, 11, (16, 32, 32))
        make = lambda: build_segmenter("unet", num_classes=11, in_channels=1, mean=[0.5], std=[0.5])  # noqa: E731
    else:
        x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
        make = lambda: build_model("small-cnn", in_channels=1, num_classes=10, image_size=28,  # noqa: E731
                                   mean=[0.5], std=[0.5])
    times = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            net = make().to(memory_format=layout)
            opt = torch.optim.SGD(net.parameters(), lr=0.01)
            xx = x.contiguous(memory_format=layout)

            def step():
                with autocast({"precision": precision}, "cpu"):
                    out = net(xx)
                loss = F.cross_entropy(out.float(), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            for _ in range(3):
                step()
            t = time.perf_counter()
            for _ in range(10):
                step()
            times[(str(layout).split(".")[-1], precision)] = (time.perf_counter() - t) / 10
    base = times[("contiguous_format", "fp32")]
    for key, value in times.items():
        print(f"{model} {key[0]} {key[1]}: {value * 1000:.1f} ms/step, x{base / value:.2f} vs NCHW fp32")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert all(v > 0 for v in times.values())


def _fcos_training():
    """quick's FCOS training unit: the detector (10 classes, 1 channel, 64 px), a batch of 16 scenes
    as ``imbench perf``'s bare loop makes them, and its SGD."""
    import torch

    from imbench.benchmarks.perf import _batch
    from imbench.tasks.detection.models import build_fcos

    torch.manual_seed(0)
    det = build_fcos(10, 1, 64, [0.5], [0.25])
    x, y = _batch("detection", (1, 64, 64), 10, 16, torch.Generator().manual_seed(0))
    return det, x, y, torch.optim.SGD(det.parameters(), lr=0.01, momentum=0.9)


@pytest.mark.parametrize("model", ["fcos", "unet"])
def test_torch_compile_speed(benchmark, model):
    """``torch.compile`` (inductor) against eager for one training step of the track's default
    model at quick's batch, one torch thread, side by side; prints the step times, the speed-up
    and the one-off compile time (README, "Speed": the result decides whether imbench compiles).
    FCOS compiles its backbone and head (torchvision's target assignment and losses break the
    graph: compiling the whole detector gains the same and compiles for minutes)."""
    import time

    import torch
    import torch.nn.functional as F

    from imbench.tasks.segmentation.models import build_segmenter

    before = torch.get_num_threads()
    torch.set_num_threads(1)

    def make(compiled: bool):
        torch.manual_seed(0)
        if model == "fcos":
            net, x, y, opt = _fcos_training()
            if compiled:
                net.model.backbone = torch.compile(net.model.backbone)
                net.model.head = torch.compile(net.model.head)
            loss_of = lambda: sum(net(x, y).values())  # noqa: E731
        else:
            net = build_segmenter("unet", num_classes=11, in_channels=1, mean=[0.5], std=[0.5])
            net = net.to(memory_format=torch.channels_last)
            x = torch.rand(16, 1, 32, 32).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 11, (16, 32, 32))
            net = torch.compile(net) if compiled else net
            opt = torch.optim.Adam(net.parameters(), lr=3e-3)
            loss_of = lambda: F.cross_entropy(net(x).float(), y)  # noqa: E731

        def step():
            loss = loss_of()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    times, first = {}, {}
    try:
        for compiled in (False, True):
            t = time.perf_counter()
            step = make(compiled)
            step()
            first[compiled] = time.perf_counter() - t
            for _ in range(5):
                step()
            t = time.perf_counter()
            for _ in range(20):
                step()
            times[compiled] = (time.perf_counter() - t) / 20
    finally:
        torch.set_num_threads(before)
    print(f"{model}: eager {times[False] * 1e3:.1f} ms/step, compiled {times[True] * 1e3:.1f} ms/step, "
          f"x{times[False] / times[True]:.2f}; first compiled step {first[True]:.1f} s "
          f"(eager {first[False]:.2f} s)")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert all(v > 0 for v in times.values())


def test_detection_step_profile(benchmark):
    """Where one FCOS training step (16 images of 64 px, quick's batch, one thread) spends its time:
    ``torch.profiler`` around torchvision's stages (backbone + FPN, head, ``compute_loss`` -- target
    assignment and the losses --, the transform), the backward pass and the optimizer step; prints
    each stage's ms per step and share, and the heaviest ops (README, "Speed")."""
    import torch
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    det, x, y, opt = _fcos_training()
    det.train()

    def labelled(fn, label):
        def run(*args, **kwargs):
            with record_function(label):
                return fn(*args, **kwargs)
        return run

    inner = det.model
    inner.compute_loss = labelled(inner.compute_loss, "## compute_loss")
    for name in ("backbone", "head", "transform"):
        module = getattr(inner, name)
        module.forward = labelled(module.forward, f"## {name}")

    def step():
        with record_function("## forward"):
            loss = sum(det(x, y).values())
        with record_function("## backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("## optimizer"):
            opt.step()

    try:
        for _ in range(5):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                step()
    finally:
        torch.set_num_threads(before)
    stages = {e.key: e.cpu_time_total / 20 / 1e3 for e in prof.key_averages() if e.key.startswith("##")}
    total = stages["## forward"] + stages["## backward"] + stages["## optimizer"]
    for key, ms in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"{key[3:]:15s} {ms:6.1f} ms/step {100 * ms / total:5.1f} %")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert stages["## compute_loss"] < stages["## forward"] < total
