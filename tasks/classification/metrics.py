"""Classification metrics of the image-level track (DESIGN.md "Metrics").

Everything is computed by scikit-learn / imbalanced-learn (not re-implemented) and returned
as plain Python floats / lists / None, so a record can be ``json.dumps``-ed as is.  A class
absent from ``y_true`` has no recall: it is ``None`` in ``per_class_recall`` and left out of
every recall-based average (balanced accuracy, G-means, tail / head recall).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from imblearn.metrics import geometric_mean_score
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)

METRIC_NOTES: dict[str, str] = {
    "accuracy": "top-1 accuracy, sklearn accuracy_score",
    "balanced_accuracy": "ACSA (average class-specific accuracy) = mean per-class recall over the "
                         "classes present in y_true, sklearn balanced_accuracy_score "
                         "(DeepSMOTE's ACSA)",
    "macro_f1": "unweighted mean of per-class F1 over all num_classes classes, sklearn f1_score("
                "average='macro', labels=range(num_classes), zero_division=0); a class neither "
                "present nor predicted counts as F1 = 0",
    "gmean": "geometric mean of the per-class recalls of the classes present in y_true, "
             "imblearn geometric_mean_score(average='multiclass'), default correction=0: one "
             "class with zero recall makes it 0 (the honest value, no smoothing)",
    "gmean_macro": "sqrt(mean per-class recall x mean per-class specificity) over the classes "
                   "present in y_true, imblearn geometric_mean_score(average='macro'); above "
                   "ACSA as in DeepSMOTE's GM column, so likely the variant DeepSMOTE reports",
    "per_class_recall": "recall of each class 0..num_classes-1, sklearn recall_score("
                        "average=None); None for a class absent from y_true",
    "tail_recall": "mean recall of the minority (tail) classes present in y_true; None if there "
                   "are none",
    "head_recall": "mean recall of the other (head) classes present in y_true; None if none",
    "confusion_matrix": "sklearn confusion_matrix(labels=range(num_classes)); rows = true class, "
                        "columns = predicted class",
    "many_acc": "mean recall of the many-shot classes present in y_true (Liu et al. 2019: more than "
                "100 training images, scaled by min(1, n_max / 500); shot_groups records the rule, the "
                "thresholds and the groups); None if the group is empty",
    "medium_acc": "mean recall of the medium-shot classes (20 to 100 training images, scaled)",
    "few_acc": "mean recall of the few-shot classes (fewer than 20 training images, scaled)",
    "shot_groups": "the many / medium / few-shot rule, its scale and thresholds, and the classes of "
                   "each group",
    "intra_rare_recall": "intra recipe: recall of the target class on its test images in the rare "
                         "sub-mode (the KMeans cluster the recipe thinned); None elsewhere",
    "intra_common_recall": "intra recipe: recall of the target class on its other test images",
}

SHOT_RULE = ("Liu et al. 2019 (OLTR): many-shot > 100, medium 20-100, few-shot < 20 training images, "
             "thresholds scaled by min(1, n_max / 500) (n_max: the largest class's training count)")


def shot_groups(train_counts: Sequence[int]) -> dict[str, Any]:
    """Classes split into many / medium / few-shot by their training counts (``SHOT_RULE``), with
    the scale and thresholds used. The scale keeps the split meaningful on small sets: digits
    (n_max ~125) would be all few-shot by the ImageNet-LT / CIFAR-100-LT thresholds."""
    n = [int(c) for c in train_counts]
    scale = min(1.0, max(n) / 500.0) if n and max(n) > 0 else 1.0
    many_above, few_below = 100.0 * scale, 20.0 * scale
    groups = {"many": [c for c, k in enumerate(n) if k > many_above],
              "medium": [c for c, k in enumerate(n) if few_below <= k <= many_above],
              "few": [c for c, k in enumerate(n) if k < few_below]}
    return {"rule": SHOT_RULE, "scale": scale, "many_above": many_above, "few_below": few_below, **groups}


def _labels(a: Any, what: str, num_classes: int) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, possibly on an accelerator
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{what} must be a 1-D array of integer labels, got shape {a.shape} "
                         f"dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{what} holds labels outside 0..{num_classes - 1}")
    return a.astype(np.int64)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int,
                           minority: Sequence[int], train_counts: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy, ACSA, macro-F1, two G-means, per-class / tail / head recall and the confusion
    matrix of predictions ``y_pred`` against ``y_true`` (see ``METRIC_NOTES``); with the training
    counts, also many / medium / few-shot accuracy and their ``shot_groups``."""
    y_true = _labels(y_true, "y_true", num_classes)
    y_pred = _labels(y_pred, "y_pred", num_classes)
    if y_true.size == 0 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be non-empty and of equal length, got "
                         f"{y_true.size} and {y_pred.size}")
    minority = sorted({int(c) for c in minority})
    if any(c < 0 or c >= num_classes for c in minority):
        raise ValueError(f"minority classes {minority} outside 0..{num_classes - 1}")
    labels = list(range(num_classes))
    present = np.unique(y_true).tolist()  # classes that have a recall

    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    per_class = [None if c not in present else float(r) for c, r in enumerate(recall)]
    with warnings.catch_warnings():
        # predictions of a class absent from y_true: sklearn warns and leaves that class out
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        bacc = balanced_accuracy_score(y_true, y_pred)
    shots = {}
    if train_counts is not None:
        if len(train_counts) != num_classes:
            raise ValueError(f"train_counts has {len(train_counts)} classes, expected {num_classes}")
        groups = shot_groups(train_counts)
        shots = {f"{g}_acc": _mean([per_class[c] for c in groups[g]]) for g in ("many", "medium", "few")}
        shots["shot_groups"] = groups
    return {
        **shots,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(bacc),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                   zero_division=0)),
        "gmean": float(geometric_mean_score(y_true, y_pred, labels=present,
                                            average="multiclass")),
        "gmean_macro": float(geometric_mean_score(y_true, y_pred, labels=present,
                                                  average="macro")),
        "per_class_recall": per_class,
        "tail_recall": _mean([per_class[c] for c in minority]) if minority else None,
        "head_recall": _mean([r for c, r in enumerate(per_class) if c not in minority]),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def submode_recall(y_true: Sequence[int], y_pred: Sequence[int], target: int, rare_index: Sequence[int]) -> dict:
    """The intra recipe's sub-mode recalls: of the target class's test images, those at
    ``rare_index`` (the rare sub-mode) and the others (``intra_rare_recall`` /
    ``intra_common_recall``; None where a part is empty)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    members = np.flatnonzero(y_true == target)
    rare = np.isin(members, np.asarray(list(rare_index), dtype=np.int64))
    hit = y_pred[members] == target
    return {"intra_rare_recall": float(hit[rare].mean()) if rare.any() else None,
            "intra_common_recall": float(hit[~rare].mean()) if (~rare).any() else None}
