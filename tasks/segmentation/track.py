"""The pixel-level track: segmentation source -> recipe -> method -> train a segmenter -> mIoU."""
from __future__ import annotations

import time

import torch

from ...benchmarks.contract import Method
from ...benchmarks.contract.track import TRACKS, CellOutcome, Track
from ...data_recipes.segmentation import SEG_RECIPES, SEG_SOURCES, load_segset
from ...data_recipes.segmentation.recipes import apply_seg_recipe, resolve_seg_recipe
from .. import cells
from .metrics import METRIC_NOTES, confusion_matrix, segmentation_metrics
from .models import MODELS, build_segmenter
from .train import AUGMENT, fit, predict


def load_cell_data(cell: dict, runtime: dict):
    """The cell's segmentation source and imbalanced training split (sources cached in-process)."""
    return cells.load_cell_data(cell, runtime, load_segset, apply_seg_recipe,
                                image_size=cell["dataset"].get("image_size"))


class SegmentationTrack(Track):
    name = "segmentation"
    summary = "pixel-level imbalance: rare classes by pixel share, foreground/background, occlusion"
    default_model = "unet"
    default_dataset = "digit-scenes"
    headline_metric = "miou"
    report_metrics = ("miou", "rare_iou", "mean_dice", "pixel_accuracy", "fw_iou", "fid", "kid")
    per_class_metric = "per_class_iou"
    lower_is_better = ("fid", "kid")
    table_metrics = ("miou", "rare_iou", "mean_dice", "pixel_accuracy")
    augment_policies = AUGMENT
    resizable = True

    def datasets(self):
        return SEG_SOURCES

    def recipes(self):
        return SEG_RECIPES

    def models(self):
        return MODELS

    def resolve_recipe(self, name: str, params: dict) -> dict:
        return resolve_seg_recipe(name, params)

    def validate(self, cell: dict, runtime: dict) -> dict:
        source, imb = load_cell_data(cell, runtime)
        MODELS.get(cell["model"])
        return {"fingerprint": source.info["fingerprint"]}

    def run(self, cell: dict, method: Method, runtime: dict, progress) -> CellOutcome:
        device = torch.device(runtime.get("device", "cpu"))
        source, imb = load_cell_data(cell, runtime)
        seed = int(cell["seed"])
        K = len(imb.class_names)
        mean, std = cells.channel_stats(imb.train.images)
        torch.manual_seed(seed)
        model = build_segmenter(cell["model"], num_classes=K, in_channels=len(mean), mean=mean, std=std)
        ctx = cells.cell_context(self.name, cell, runtime, source, imb, progress,
                                 instance_counts=imb.train.pixel_counts(), image_counts=imb.train.image_counts(),
                                 model_info=model.info(), ignore_index=imb.train.ignore_index)
        train, model, history, training, timings = cells.prepare_and_fit(
            method, imb, ctx, model, fit, seed=seed, device=device, progress=progress)

        t = time.perf_counter()
        predictions = predict(model, imb.test.images, device, budget=ctx.budget,
                              adjust=lambda z: method.adjust_logits(z, ctx))
        cm = confusion_matrix(zip(predictions, imb.test.masks), K, imb.test.ignore_index)
        metrics = segmentation_metrics(cm, minority=list(imb.minority))
        metrics["confusion_matrix"] = cm.tolist()
        metrics.update(ctx.metrics)
        timings["evaluate_s"] = time.perf_counter() - t
        counts = {
            "recipe": list(imb.counts),
            "recipe_images": imb.train.image_counts(),
            "trained_on": train.pixel_counts(),
            "trained_on_images": train.image_counts(),
            "synthetic_images": int(train.synthetic.sum()),
            "test": imb.test.pixel_counts(),
            "minority": list(imb.minority),
            "class_names": list(imb.class_names),
            "unit": "pixels",
            "images": {"recipe": len(imb.train), "trained_on": len(train), "test": len(imb.test)},
        }
        return CellOutcome(
            metrics=metrics, class_counts=counts, timings=timings,
            extras={"history": history, "model": model.info(), **ctx.record},
            data={"source": source.info, "recipe": imb.info, "metric_notes": METRIC_NOTES},
            training=training,
        )


TRACKS.register(SegmentationTrack.name, SegmentationTrack())
