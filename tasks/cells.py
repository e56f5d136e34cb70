"""What every track does the same way for one cell: load its data (checking it is the data the
run was planned on) and build the :class:`Context` its method's hooks receive."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..benchmarks.contract import Context
from ..data_recipes.validation import carve


def load_cell_data(cell: dict, runtime: dict, load, apply, **load_extra):
    """``(source, imbalanced split)``: ``load(name, ...)`` the track's (cached) source, refuse data
    that changed on disk since the run was planned, then ``apply`` the recipe (pure, seeded); with the dataset's ``validation: F``, carve the
    validation split the cell is trained without and evaluated on (``data_recipes/validation.py``)."""
    ds = cell["dataset"]
    source = load(ds["name"], data_root=runtime.get("data_root"), data_path=runtime.get("data_path"),
                  download=bool(runtime.get("download")), split_seed=ds.get("split_seed", 0),
                  test_fraction=ds.get("test_fraction"), **load_extra)
    expected = ds.get("fingerprint")
    if expected is not None and source.info.get("fingerprint") != expected:
        raise RuntimeError(f"the data of {ds['name']} changed on disk since the run was planned "
                           f"(fingerprint {source.info.get('fingerprint')}, planned {expected})")
    imb = apply(source, cell["recipe"]["name"], cell["recipe"]["params"], cell.get("subset_seed", 0))
    if ds.get("validation"):
        # a validation cell: trained on the rest of the training set, evaluated on the carved split
        imb = carve(imb, float(ds["validation"]), int(cell.get("subset_seed", 0)))
    return source, imb


def cell_context(track: str, cell: dict, runtime: dict, source, imb, progress, **counts) -> Context:
    """The cell's Context: ``counts`` are the track's ``instance_counts`` (and ``image_counts``,
    ``model_info``) for the recipe's split ``imb``; the rest comes from the cell and the runtime."""
    seed = int(cell["seed"])
    return Context(
        track=track, class_names=list(imb.class_names), minority=list(imb.minority), seed=seed,
        device=torch.device(runtime.get("device", "cpu")), budget=dict(cell["profile"]["budget"]),
        dataset=cell["dataset"]["name"], recipe=dict(cell["recipe"]), quiet=not progress,
        cache_dir=Path(runtime["cache_dir"]) if runtime.get("cache_dir") else None, source=source,
        data_key={"fingerprint": source.info.get("fingerprint"), "split": source.info.get("split"),
                  "dataset": cell["dataset"], "recipe": cell["recipe"],
                  "subset_seed": cell.get("subset_seed", 0), "seed": seed},
        artifacts_dir=Path(runtime["out"]) / "samples" if runtime.get("out") else None,
        artifact_stem=runtime.get("record_stem", "cell"), test=imb.test,
        val=imb.test if cell["dataset"].get("validation") else None, **counts,
    )


def channel_stats(images: list[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (floored at 1e-3) of uint8 images (C, H, W) of any sizes, in [0, 1],
    accumulated image by image in float64: what a detector's or segmenter's input is normalised with."""
    C = int(images[0].shape[0])
    total = torch.zeros(C, dtype=torch.float64)
    squares = torch.zeros(C, dtype=torch.float64)
    n = 0
    for img in images:
        x = img.reshape(C, -1).double() / 255.0
        total += x.sum(1)
        squares += (x * x).sum(1)
        n += x.shape[1]
    mean = total / n
    var = (squares - n * mean * mean) / max(n - 1, 1)
    return mean.tolist(), var.clamp_min(0).sqrt().clamp_min(1e-3).tolist()


IDENTICAL_KEY = "identical_to"  # lifted from the outcome's extras to the record's top level


def identical_to_erm(method, recipe_train, prepared) -> bool:
    """Whether the cell computes ``erm``'s cell by construction: the method's only hook is
    ``prepare`` and it handed back the recipe's training set itself (a balanced block for an
    over-sampler, nothing to generate or paste). Training then runs erm's code on erm's data with
    erm's seeds -- every track re-seeds after ``prepare`` -- so the metrics are erm's, bit for bit."""
    return (getattr(method, "name", "") != "erm" and prepared is recipe_train
            and set(type(method).hooks()) <= {"prepare"})


def note_identical(method, recipe_train, prepared, ctx: Context) -> None:
    """Note ``identical_to: erm`` for a cell that is erm's by construction (see above): the
    statistics do not count it as evidence."""
    if identical_to_erm(method, recipe_train, prepared):
        ctx.note(IDENTICAL_KEY, "erm")


def prepare_and_fit(method, imb, ctx: Context, model, fit, *, seed: int, device, progress) -> tuple:
    """The method's ``prepare`` on the recipe's split, ``adapt_model``, then ``fit(model, train, method,
    ctx, progress=..., reference_size=...)`` (the detection and segmentation order); returns
    ``(train, model, history, training, timings)`` with ``prepare_s`` and ``train_s``. The global
    stream is re-seeded before training: what ``prepare`` or ``adapt_model`` drew from it (a GAN
    trained or loaded from the cache) must not change training (Faster R-CNN's samplers draw from it)."""
    timings = {}
    t = time.perf_counter()
    train = method.prepare(imb.train, ctx)
    timings["prepare_s"] = time.perf_counter() - t
    note_identical(method, imb.train, train, ctx)
    t = time.perf_counter()
    model = method.adapt_model(model, ctx).to(device)
    torch.manual_seed(seed)
    history, training = fit(model, train, method, ctx, progress=progress, reference_size=len(imb.train))
    timings["train_s"] = time.perf_counter() - t
    return train, model, history, training, timings
