"""Tests of tasks/classification/metrics.py against independent numpy computations."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from imbench.tasks.classification.metrics import METRIC_NOTES, classification_metrics

K = 10
MINORITY = [6, 7, 8, 9]


def random_predictions(seed=0, n=500):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, K, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, K, n))
    y_pred[np.isin(y_pred, [3, 8])] = 0  # classes 3 and 8 are never predicted
    return y_true, y_pred


def reference(y_true, y_pred):
    cm = np.zeros((K, K), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    recall = tp / support
    precision = np.divide(tp, predicted, out=np.zeros(K), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros(K), where=precision + recall > 0)
    tn = cm.sum() - support - predicted + tp
    specificity = tn / (tn + predicted - tp)
    return cm, recall, f1, specificity


def test_values_match_an_independent_computation():
    y_true, y_pred = random_predictions()
    cm, recall, f1, specificity = reference(y_true, y_pred)
    assert recall[3] == 0 and recall[8] == 0
    m = classification_metrics(y_true, y_pred, K, MINORITY)
    assert m["confusion_matrix"] == cm.tolist()
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert m["per_class_recall"] == pytest.approx(recall.tolist())
    assert m["balanced_accuracy"] == pytest.approx(recall.mean())
    assert m["macro_f1"] == pytest.approx(f1.mean())
    # a class with zero recall makes the multiclass G-mean 0 (no correction)
    assert m["gmean"] == 0.0
    assert m["gmean_macro"] == pytest.approx(math.sqrt(recall.mean() * specificity.mean()))
    assert m["gmean_macro"] > m["balanced_accuracy"]
    assert m["tail_recall"] == pytest.approx(recall[MINORITY].mean())
    assert m["head_recall"] == pytest.approx(np.delete(recall, MINORITY).mean())


def test_gmean_is_geometric_mean_of_recalls_when_all_positive():
    y_true, y_pred = random_predictions(seed=1)
    y_pred[:K] = y_true[:K] = np.arange(K)  # every class recalled at least once
    _, recall, _, _ = reference(y_true, y_pred)
    assert (recall > 0).all()
    m = classification_metrics(y_true, y_pred, K, MINORITY)
    assert m["gmean"] == pytest.approx(float(np.exp(np.log(recall).mean())))
    assert 0 < m["gmean"] <= m["balanced_accuracy"]


def test_class_absent_from_y_true_is_none_and_left_out():
    y_true, y_pred = random_predictions(seed=2)
    keep = y_true != 7
    y_true, y_pred = y_true[keep], y_pred[keep]
    y_pred[:5] = 7  # predicted although absent
    m = classification_metrics(y_true, y_pred, K, MINORITY)
    rec = m["per_class_recall"]
    assert rec[7] is None and len(rec) == K
    present = [r for r in rec if r is not None]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(present))
    assert m["tail_recall"] == pytest.approx(np.mean([rec[c] for c in (6, 8, 9)]))
    assert m["gmean"] == 0.0  # class 3 and 8 are still never predicted
    json.dumps(m, allow_nan=False)


def test_tail_and_head_with_empty_minority():
    y_true, y_pred = random_predictions(seed=3)
    m = classification_metrics(y_true, y_pred, K, [])
    assert m["tail_recall"] is None
    assert m["head_recall"] == pytest.approx(m["balanced_accuracy"])


def test_plain_python_types_and_json():
    y_true, y_pred = random_predictions(seed=4)
    m = classification_metrics(torch.as_tensor(y_true), torch.as_tensor(y_pred), K, MINORITY,
                               train_counts=[500 // (k + 1) ** 3 for k in range(K)])
    for key, value in m.items():
        if key in ("per_class_recall", "confusion_matrix"):
            assert type(value) is list
        elif key == "shot_groups":
            assert type(value) is dict
        else:
            assert type(value) is float, key
    assert all(type(r) is float for r in m["per_class_recall"])
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    json.loads(json.dumps(m, allow_nan=False))
    # every metric has a note; the intra recipe's sub-mode recalls are the track's, not this call's
    assert set(METRIC_NOTES) == set(m) | {"intra_rare_recall", "intra_common_recall"}
    json.dumps(METRIC_NOTES)


def test_no_warnings_and_perfect_predictions(recwarn):
    y = np.arange(K).repeat(3)
    m = classification_metrics(y, y, K, MINORITY)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "gmean", "gmean_macro",
                "tail_recall", "head_recall"):
        assert m[key] == pytest.approx(1.0), key
    y_true, y_pred = random_predictions(seed=5)
    y_pred[y_true == 2] = 5
    classification_metrics(y_true[y_true != 4], y_pred[y_true != 4], K, MINORITY)
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], K, [])
    with pytest.raises(ValueError):
        classification_metrics([0, 10], [0, 1], K, [])
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0, 1], K, [12])
