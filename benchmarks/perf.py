"""``imbench perf``: imbench's training and evaluation speed per track, beside a bare loop.

For each track (default: all three) and precision, one ``erm`` cell of the track's first quick-suite
block is run through the runner (data loading excluded: it is cached and not timed), and the
same model -- same builder, input shape, classes, batch size, memory layout and precision -- is
trained for the same number of optimizer steps in a *bare loop*: random batches prepared
beforehand, the track's plain loss (cross-entropy; the detector's own losses on random boxes), one
SGD step each. Evaluation: imbench's ``evaluate_s`` (predictions *and* metrics: COCOeval for
detection) against bare forward passes of the test-set size under ``inference_mode``.

The ratio ``imbench / bare`` is what imbench's machinery (sampling, augmentation, method hooks,
target handling, metrics) costs; both are measured in one process, side by side, with the same
torch threads (``--threads``, default 1: what a pool worker uses).
"""
from __future__ import annotations

import tempfile
import time

import pandas as pd
import torch
import torch.nn.functional as F

from .contract.errors import UsageError

TRACK_NAMES = ("classification", "detection", "segmentation")


def default_cell(track: str, precision: str) -> dict:
    """The ``erm`` cell of the first block of the track's quick-suite grid, seed 0, in ``precision``."""
    from .plugins import load_methods
    from .suite import Overrides, expand, load_suite

    load_methods()
    cells = expand(load_suite(track), Overrides(methods=["erm"], seeds=[0], precision=precision))
    return cells[0]


def _bare_model(record: dict):
    """The record's model, built afresh (same builder, channels, classes, image size)."""
    track, name = record["track"], record["model"]
    shape = record["data"]["source"]["image_shape"]
    classes = int(record["data"]["source"]["num_classes"])
    mean, std = [0.5] * shape[0], [0.25] * shape[0]
    if track == "classification":
        from ..tasks.classification.models import build_model

        return build_model(name, in_channels=shape[0], num_classes=classes, image_size=shape[1], mean=mean, std=std)
    if track == "detection":
        from ..tasks.detection.models import MODELS

        return MODELS.get(name).build(classes, shape[0], int(shape[1]), mean, std)
    from ..tasks.segmentation.models import build_segmenter

    return build_segmenter(name, num_classes=classes, in_channels=shape[0], mean=mean, std=std)


def _batch(track: str, shape, classes: int, n: int, gen: torch.Generator):
    x = torch.rand(n, *shape, generator=gen)
    if track == "classification":
        return x, torch.randint(0, classes, (n,), generator=gen)
    if track == "segmentation":
        return x, torch.randint(0, classes, (n, shape[1], shape[2]), generator=gen)
    side = shape[1]
    targets = []
    for _ in range(n):  # 2-3 boxes of 8-24 px, as the scenes hold
        k = int(torch.randint(2, 4, (1,), generator=gen))
        xy = torch.rand(k, 2, generator=gen) * (side - 24)
        wh = 8 + torch.rand(k, 2, generator=gen) * 16
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, classes, (k,), generator=gen)})
    return list(x), targets


def bare_loop(record: dict, device: torch.device) -> tuple[float, float]:
    """(training img/s, evaluation img/s) of the bare loop for the cell of ``record``."""
    from ..tasks.precision import autocast, memory_layout
    from ..tasks.schedule import sgd

    track, budget = record["track"], record["config"]["profile"]["budget"]
    shape = record["data"]["source"]["image_shape"]
    classes = int(record["data"]["source"]["num_classes"])
    steps, batch_size = int(record["training"]["train_steps"]), int(budget["batch_size"])
    n_test = sum(record["data"]["source"]["class_counts"]["test"]) if track == "classification" \
        else int(record["data"]["source"]["sizes"]["test"])
    torch.manual_seed(0)
    model = _bare_model(record).to(device)
    layout = memory_layout(model, device) if track != "detection" else torch.contiguous_format
    optimizer = sgd([p for p in model.parameters() if p.requires_grad], budget)
    gen = torch.Generator().manual_seed(0)
    batches = [_batch(track, shape, classes, batch_size, gen) for _ in range(min(steps, 8))]
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        with autocast(budget, device):
            if track == "detection":
                loss = sum(v.float() for v in model(x, y).values())
            else:
                loss = F.cross_entropy(model(x.contiguous(memory_format=layout)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    train = steps * batch_size / (time.perf_counter() - start)
    model.eval()
    eval_batch = 32 if track == "detection" else 512
    x, _ = _batch(track, shape, classes, min(n_test, eval_batch), gen)
    start, done = time.perf_counter(), 0
    with torch.inference_mode(), autocast(budget, device):
        while done < n_test:
            model(x if track == "detection" else x.contiguous(memory_format=layout))
            done += len(x)
    return train, done / (time.perf_counter() - start)


def measure(tracks: list[str], precisions: list[str], device: str = "cpu", threads: int = 1) -> pd.DataFrame:
    """One row per (track, precision): imbench's and the bare loop's img/s, training and evaluation."""
    from ..tasks.precision import resolve_cells
    from .runner import run_cell

    for t in tracks:
        if t not in TRACK_NAMES:
            raise UsageError(f"unknown track {t!r}; use {', '.join(TRACK_NAMES)}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runtime = {"out": tmp, "device": device, "cache_dir": None}
            for track in tracks:
                for precision in precisions:
                    cell = resolve_cells([default_cell(track, precision)], device)[0]
                    run_cell(cell, runtime)  # a first run loads and caches the data
                    record = run_cell(cell, runtime)
                    if record["status"] != "ok":
                        raise RuntimeError(f"the {track} cell failed: {record['error']}")
                    t, tr = record["timings"], record["training"]
                    n_test = sum(record["class_counts"].get("test", [])) if track == "classification" \
                        else int(record["data"]["source"]["sizes"]["test"])
                    bare_train, bare_eval = bare_loop(record, torch.device(device))
                    train = tr["images_seen"] / t["train_s"]
                    evaluate = n_test / t["evaluate_s"]
                    rows.append({"track": track, "model": record["model"], "precision": tr["precision"],
                                 "layout": tr["memory_format"], "steps": tr["train_steps"],
                                 "train img/s": train, "bare train img/s": bare_train,
                                 "train ratio": train / bare_train, "eval img/s": evaluate,
                                 "bare eval img/s": bare_eval, "eval ratio": evaluate / bare_eval})
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows)
