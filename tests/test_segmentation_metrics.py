"""Segmentation metrics against a hand-computed confusion matrix and torchmetrics."""
from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from imbench.tasks.segmentation.metrics import confusion_matrix, segmentation_metrics


def test_metrics_equal_a_hand_computed_confusion_matrix():
    pred = torch.tensor([[0, 1, 1, 2], [2, 2, 0, 1]])
    label = torch.tensor([[0, 1, 2, 2], [2, 255, 0, 1]])  # one void pixel
    cm = confusion_matrix([(pred, label)], 3)
    # rows = ground truth: 0 -> [2,0,0]; 1 -> [0,2,0]; 2 -> [0,1,2]
    assert cm.tolist() == [[2, 0, 0], [0, 2, 0], [0, 1, 2]]
    m = segmentation_metrics(cm, minority=[2])
    iou = [2 / 2, 2 / 3, 2 / 3]
    assert m["per_class_iou"] == pytest.approx(iou)
    assert m["miou"] == pytest.approx(sum(iou) / 3)
    assert m["rare_iou"] == pytest.approx(2 / 3)
    assert m["mean_dice"] == pytest.approx((1.0 + 4 / 5 + 4 / 5) / 3)
    assert m["pixel_accuracy"] == pytest.approx(6 / 7)
    assert m["fw_iou"] == pytest.approx(2 / 7 * 1.0 + 2 / 7 * 2 / 3 + 3 / 7 * 2 / 3)
    assert m["labelled_pixels"] == 7


def test_dataset_level_miou_equals_torchmetrics_macro_jaccard_not_a_per_image_mean():
    g = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(5):
        label = torch.randint(0, 4, (16, 16), generator=g)
        label[torch.rand(16, 16, generator=g) < 0.1] = 255
        pred = torch.where(torch.rand(16, 16, generator=g) < 0.7, label.clamp(max=3),
                           torch.randint(0, 4, (16, 16), generator=g))
        pairs.append((pred, label))
    m = segmentation_metrics(confusion_matrix(pairs, 4))
    ref = MulticlassJaccardIndex(num_classes=4, average="macro", ignore_index=255)
    for pred, label in pairs:
        ref.update(pred, label)
    assert m["miou"] == pytest.approx(float(ref.compute()), abs=1e-6)
    per_image = sum(segmentation_metrics(confusion_matrix([p], 4))["miou"] for p in pairs) / len(pairs)
    assert m["miou"] != pytest.approx(per_image, abs=1e-9)


def test_absent_classes_have_no_iou_and_bad_input_raises():
    m = segmentation_metrics(torch.tensor([[3, 0, 0], [0, 0, 0], [1, 0, 2]]))
    assert m["per_class_iou"][1] is None and m["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    # torchmetrics' macro average leaves a class absent from labels and predictions out too
    pred, label = torch.tensor([0, 0, 1, 1, 0, 1]), torch.tensor([0, 0, 1, 1, 255, 0])
    ours = segmentation_metrics(confusion_matrix([(pred, label)], 3))
    ref = MulticlassJaccardIndex(num_classes=3, average="macro", ignore_index=255)(pred, label)
    assert ours["per_class_iou"][2] is None and ours["miou"] == pytest.approx(float(ref))
    with pytest.raises(ValueError):
        segmentation_metrics(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        confusion_matrix([(torch.zeros(2, 2), torch.zeros(3, 3))], 2)
