"""The object-level track: scene source -> recipe -> method -> train a detector -> COCO metrics."""
from __future__ import annotations

import time

import torch

from ...benchmarks.contract import Method
from .. import cells
from ...benchmarks.contract.track import TRACKS, CellOutcome, Track
from ...data_recipes.scenes import SCENE_RECIPES, SCENE_SOURCES, load_scenes
from ...data_recipes.scenes.recipes import apply_scene_recipe, resolve_scene_recipe
from .metrics import METRIC_NOTES, detection_metrics
from .models import MODELS, build_detector
from .train import AUGMENT, fit, predict
from .voc_eval import voc07_metrics

VOC07_SOURCES = ("voc",)  # sets whose difficult flags follow VOC: also scored by VOC07 mAP@0.5


def load_cell_data(cell: dict, runtime: dict):
    """The cell's scene source and imbalanced training split (sources cached in-process)."""
    return cells.load_cell_data(cell, runtime, load_scenes, apply_scene_recipe,
                                image_size=cell["dataset"].get("image_size"))


def _input_size(scenes) -> int:
    return max(max(int(img.shape[1]), int(img.shape[2])) for img in scenes.images)


class DetectionTrack(Track):
    name = "detection"
    summary = "object-level imbalance: rare object classes, small objects, occlusion, foreground/background"
    default_model = "fcos"
    default_dataset = "digit-scenes"
    headline_metric = "ap"
    report_metrics = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "rare_ap", "ap_r", "ap_c",
                      "ap_f", "ar100", "recall_occluded", "voc07_map50", "fid", "kid")
    per_class_metric = "per_class_ap"
    lower_is_better = ("fid", "kid")
    table_metrics = ("ap", "ap50", "ap_small", "rare_ap")
    augment_policies = AUGMENT
    resizable = True

    def datasets(self):
        return SCENE_SOURCES

    def recipes(self):
        return SCENE_RECIPES

    def models(self):
        return MODELS

    def resolve_recipe(self, name: str, params: dict) -> dict:
        return resolve_scene_recipe(name, params)

    def validate(self, cell: dict, runtime: dict) -> dict:
        source, imb = load_cell_data(cell, runtime)
        MODELS.get(cell["model"])
        build_detector(cell["model"], num_classes=len(imb.class_names), in_channels=imb.train.channels,
                       image_size=_input_size(imb.train), mean=[0.5] * imb.train.channels,
                       std=[0.25] * imb.train.channels)
        return {"fingerprint": source.info["fingerprint"]}

    def run(self, cell: dict, method: Method, runtime: dict, progress) -> CellOutcome:
        device = torch.device(runtime.get("device", "cpu"))
        source, imb = load_cell_data(cell, runtime)
        seed = int(cell["seed"])
        K = len(imb.class_names)
        size = _input_size(imb.train)
        mean, std = cells.channel_stats(imb.train.images)
        torch.manual_seed(seed)
        model = build_detector(cell["model"], num_classes=K, in_channels=imb.train.channels, image_size=size,
                               mean=mean, std=std)
        ctx = cells.cell_context(self.name, cell, runtime, source, imb, progress,
                                 instance_counts=imb.train.instance_counts(),
                                 image_counts=imb.train.image_counts(), model_info=model.info())
        train, model, history, training, timings = cells.prepare_and_fit(
            method, imb, ctx, model, fit, seed=seed, device=device, progress=progress)

        t = time.perf_counter()
        predictions = predict(model, imb.test.images, device, budget=ctx.budget)
        metrics = detection_metrics(imb.test, predictions, minority=list(imb.minority),
                                    area_ranges=source.info.get("area_ranges"), groups=ctx.frequency_groups)
        if source.name in VOC07_SOURCES:
            metrics.update(voc07_metrics(imb.test, predictions))
        metrics.update(ctx.metrics)
        timings["evaluate_s"] = time.perf_counter() - t
        counts = {
            "recipe": list(imb.counts),
            "recipe_images": imb.train.image_counts(),
            "trained_on": train.instance_counts(),
            "trained_on_images": train.image_counts(),
            "synthetic": _synthetic_counts(train),
            "test": imb.test.instance_counts(),
            "minority": list(imb.minority),
            "frequency_groups": ctx.frequency_groups,
            "class_names": list(imb.class_names),
            "images": {"recipe": len(imb.train), "trained_on": len(train), "test": len(imb.test)},
        }
        return CellOutcome(
            metrics=metrics, class_counts=counts, timings=timings,
            extras={"history": history, "model": model.info(), **ctx.record},
            data={"source": source.info, "recipe": imb.info, "metric_notes": METRIC_NOTES},
            training=training,
        )


def _synthetic_counts(scenes) -> list[int]:
    counts = torch.zeros(scenes.num_classes, dtype=torch.int64)
    for t in scenes.targets:
        counts += torch.bincount(t["labels"][t["synthetic"]], minlength=scenes.num_classes)
    return counts.tolist()


TRACKS.register(DetectionTrack.name, DetectionTrack())
