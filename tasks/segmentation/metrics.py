"""Segmentation metrics from one confusion matrix accumulated over the whole test set.

Dataset-level, as Cityscapes / Pascal VOC report them (not torchmetrics ``MeanIoU``'s mean of
per-image IoUs, which gives 0.80 where the dataset-level value is 0.998 on a toy case): pixels
labelled ``ignore_index`` (void) are left out; the matrix is torchmetrics'
``MulticlassConfusionMatrix`` (rows ground truth, columns prediction), and ``miou`` equals
``MulticlassJaccardIndex(average="macro", ignore_index=...)`` on the same pixels (tested).

* ``per_class_iou[c]`` = TP / (TP + FP + FN); a class with no pixel in either the ground truth or
  the predictions has no IoU (``None``) and is left out of the means -- as torchmetrics 1.9's
  macro average leaves it out (its ``average="none"`` reports 0 for such a class);
* ``miou`` the mean of the per-class IoUs; ``rare_iou`` their mean over the recipe's minority
  classes; ``mean_dice`` the mean of 2 TP / (2 TP + FP + FN);
* ``pixel_accuracy`` = trace / total; ``fw_iou`` = Σ_c (pixels of c / total) · IoU_c.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

METRIC_NOTES = {
    "miou": "mean over classes of TP/(TP+FP+FN) from one confusion matrix over the test set (void ignored)",
    "per_class_iou": "TP/(TP+FP+FN) per class; null for a class absent from both ground truth and predictions",
    "rare_iou": "mean IoU of the recipe's minority classes",
    "mean_dice": "mean over classes of 2TP/(2TP+FP+FN)",
    "pixel_accuracy": "correct pixels / labelled pixels",
    "fw_iou": "frequency-weighted IoU: sum over classes of (pixels of c / labelled pixels) * IoU_c",
}


def confusion_matrix(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                     ignore_index: int | None = 255) -> torch.Tensor:
    """(K, K) int64 counts, rows ground truth, columns prediction, over every (prediction,
    label) pair of index maps given (any shapes, equal within a pair)."""
    metric = MulticlassConfusionMatrix(num_classes=num_classes, ignore_index=ignore_index)
    for pred, label in pairs:
        pred = torch.as_tensor(pred).long()
        label = torch.as_tensor(label).long()
        if pred.shape != label.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(label.shape)} differ in shape")
        metric.update(pred.reshape(-1).clamp(0, num_classes - 1), label.reshape(-1))
    return metric.compute().long()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> list[float | None]:
    return [None if d == 0 else float(n) / float(d) for n, d in zip(num.tolist(), den.tolist())]


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def segmentation_metrics(confmat: torch.Tensor, *, minority: Sequence[int] = ()) -> dict:
    """The metrics of the module docstring from a (K, K) confusion matrix."""
    cm = torch.as_tensor(confmat, dtype=torch.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got {tuple(cm.shape)}")
    tp = cm.diag()
    gt = cm.sum(1)
    pred = cm.sum(0)
    total = float(cm.sum())
    iou = _ratio(tp, gt + pred - tp)
    dice = _ratio(2 * tp, gt + pred)
    freq = (gt / total).tolist() if total else [0.0] * len(iou)
    return {
        "miou": _mean(iou),
        "per_class_iou": iou,
        "rare_iou": _mean([iou[c] for c in minority]) if minority else None,
        "mean_dice": _mean(dice),
        "per_class_dice": dice,
        "pixel_accuracy": float(tp.sum()) / total if total else None,
        "fw_iou": sum(f * v for f, v in zip(freq, iou) if v is not None) if total else None,
        "labelled_pixels": int(total),
    }
