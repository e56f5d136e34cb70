"""The image-level track: source -> recipe -> method -> train -> evaluate."""
from __future__ import annotations

import time

import torch

from ...benchmarks.contract import Method
from .. import cells
from ...data_recipes.recipes import RECIPES, apply_recipe, resolve_recipe
from ...data_recipes.sources import SOURCES, load_source
from ...benchmarks.contract.track import TRACKS, CellOutcome, Track
from .metrics import METRIC_NOTES, classification_metrics, submode_recall
from .models import MODELS, build_model
from .train import fit, predict


def load_cell_data(cell: dict, runtime: dict):
    """The cell's source and imbalanced split (cached sources; recipes are cheap and pure)."""
    return cells.load_cell_data(cell, runtime, load_source, apply_recipe)


class ClassificationTrack(Track):
    name = "classification"
    summary = "image-level imbalance: inter-class (long-tail, step, binary, drop-one) and intra-class"
    default_model = "small-cnn"
    default_dataset = "digits"
    headline_metric = "balanced_accuracy"
    report_metrics = ("balanced_accuracy", "accuracy", "macro_f1", "gmean", "tail_recall",
                      "many_acc", "medium_acc", "few_acc", "intra_rare_recall",
                      "fid", "kid", "gan_test", "cas")
    per_class_metric = "per_class_recall"
    lower_is_better = ("fid", "kid")
    table_metrics = ("balanced_accuracy", "macro_f1", "tail_recall", "many_acc", "medium_acc", "few_acc")
    augment_policies = ("none", "auto", "digits", "natural")

    def datasets(self):
        return SOURCES

    def recipes(self):
        return RECIPES

    def models(self):
        return MODELS

    def resolve_recipe(self, name: str, params: dict) -> dict:
        return resolve_recipe(name, params)

    def validate(self, cell: dict, runtime: dict) -> dict:
        source, imb = load_cell_data(cell, runtime)
        MODELS.get(cell["model"])
        C, H, W = imb.train.image_shape
        build_model(cell["model"], in_channels=C, num_classes=len(imb.class_names), image_size=H,
                    mean=[0.5] * C, std=[0.25] * C)
        return {"fingerprint": source.info["fingerprint"]}

    def run(self, cell: dict, method: Method, runtime: dict, progress) -> CellOutcome:
        device = torch.device(runtime.get("device", "cpu"))
        source, imb = load_cell_data(cell, runtime)
        seed = int(cell["seed"])
        torch.manual_seed(seed)
        ctx = cells.cell_context(self.name, cell, runtime, source, imb, progress, instance_counts=list(imb.counts))
        timings = {}
        t = time.perf_counter()
        train = method.prepare(imb.train, ctx)
        timings["prepare_s"] = time.perf_counter() - t
        cells.note_identical(method, imb.train, train, ctx)

        t = time.perf_counter()
        C, H, _ = imb.train.image_shape
        real = imb.train.images.float().div(255.0)
        mean = real.mean(dim=(0, 2, 3)).tolist()
        std = real.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
        torch.manual_seed(seed)
        model = build_model(cell["model"], in_channels=C, num_classes=len(imb.class_names), image_size=H,
                            mean=mean, std=std)
        model = method.adapt_model(model, ctx).to(device)
        history, training = fit(model, train, method, ctx, progress=progress, reference_size=len(imb.train))
        model = method.second_stage(model, ctx)
        timings["train_s"] = time.perf_counter() - t

        t = time.perf_counter()
        pred = predict(model, imb.test.images, device, budget=ctx.budget,
                       adjust=lambda z: method.adjust_logits(z, ctx))
        y_true = imb.test.labels.numpy()
        metrics = classification_metrics(y_true, pred, len(imb.class_names), list(imb.minority), list(imb.counts))
        if "test_rare_index" in imb.info:
            metrics.update(submode_recall(y_true, pred, int(imb.info["target"]), imb.info["test_rare_index"]))
        metrics.update(ctx.metrics)
        timings["evaluate_s"] = time.perf_counter() - t
        counts = {
            "recipe": list(imb.counts),
            "trained_on": train.counts(),
            "synthetic": torch.bincount(train.labels[train.synthetic], minlength=len(imb.class_names)).tolist(),
            "test": imb.test.counts(),
            "minority": list(imb.minority),
            "class_names": list(imb.class_names),
        }
        return CellOutcome(
            metrics=metrics, class_counts=counts, timings=timings,
            extras={"history": history, **ctx.record},
            data={"source": source.info, "recipe": imb.info, "metric_notes": METRIC_NOTES},
            training=training,
        )


TRACKS.register(ClassificationTrack.name, ClassificationTrack())
