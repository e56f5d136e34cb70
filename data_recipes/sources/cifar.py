"""``cifar10``: the CIFAR-10 python batches in torchvision's layout.

Files: ``<data_root>/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (train),
``test_batch`` (test) and ``batches.meta`` (class names; the standard ten when absent). Each batch
is a pickle (``encoding="bytes"``) with ``b"data"`` (N, 3072) uint8 in R, G, B planes and
``b"labels"``. Split rules as for MNIST: both splits official, one split a seeded stratified
split (default test fraction 0.2), none a download (``download=True``) or a one-line error.
A partial train split (some of the five batches) is an error, not a silently smaller dataset.
"""
from __future__ import annotations

import os
import pickle

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ._common import SOURCES, SourceSpec, build_source, check_labels, corrupt, require_root, run_download

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]
DEFAULT_TEST_FRACTION = 0.2
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def unpickle(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... all mean a bad file
        raise corrupt(path, "CIFAR pickle", f"{type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise corrupt(path, "CIFAR pickle", f"holds a {type(obj).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_batch(path: str):
    batch = unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise corrupt(path, "CIFAR batch", f"keys {sorted(batch)}, expected data and labels")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise corrupt(path, "CIFAR batch",
                      f"data {data.dtype} {data.shape} with {labels.shape} labels, expected uint8 (N, 3072) and N labels")
    return data.reshape(-1, 3, 32, 32), check_labels(labels, len(CLASSES), path, "CIFAR batch")


def class_names(folder: str) -> list[str]:
    path = os.path.join(folder, "batches.meta")
    if not os.path.isfile(path):
        return list(CLASSES)
    names = unpickle(path).get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != len(CLASSES):
        raise corrupt(path, "CIFAR meta", "label_names is not a list of 10 names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def read_split(folder: str, batches: list[str]):
    present = [b for b in batches if os.path.isfile(os.path.join(folder, b))]
    if not present:
        return None
    if len(present) < len(batches):
        missing = [os.path.join(folder, b) for b in batches if b not in present]
        raise UsageError(f"{', '.join(missing)} missing (the other batches are there); "
                         "copy the missing files or use --download")
    paths = [os.path.join(folder, b) for b in batches]
    parts = [read_batch(p) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), paths


def load_cifar10(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None):
    root = require_root("cifar10", data_root, f"DIR/{FOLDER}/")
    folder = os.path.join(root, FOLDER)
    train, test = read_split(folder, TRAIN_BATCHES), read_split(folder, TEST_BATCHES)
    downloaded = False
    if train is None and test is None:
        if not download:
            raise UsageError(f"no CIFAR-10 batches in {folder} (expected {', '.join(TRAIN_BATCHES + TEST_BATCHES)}); "
                             "use --download, or copy the python-version batches there")
        import torchvision.datasets as tvd
        run_download("cifar10", root, lambda: tvd.CIFAR10(root, train=True, download=True))
        downloaded = True
        train, test = read_split(folder, TRAIN_BATCHES), read_split(folder, TEST_BATCHES)
        if train is None and test is None:
            raise UsageError(f"download of cifar10 left no batches in {folder}")
    names = class_names(folder)
    meta = [os.path.join(folder, "batches.meta")] if os.path.isfile(os.path.join(folder, "batches.meta")) else []
    present = [s for s, v in (("train", train), ("test", test)) if v is not None]
    return build_source(
        "cifar10",
        class_names=names,
        files=[p for v in (train, test) if v is not None for p in v[2]] + meta,
        train=train[:2] if train is not None else None,
        test=test[:2] if test is not None else None,
        split_seed=split_seed,
        test_fraction=test_fraction,
        default_fraction=DEFAULT_TEST_FRACTION,
        split_from=present[0] if len(present) == 1 else None,
        data_root=root,
        downloaded=downloaded,
    )


SOURCES.register("cifar10", SourceSpec(
    name="cifar10",
    loader=load_cifar10,
    summary="CIFAR-10 natural images (32x32 RGB, 10 classes, 50k/10k)",
    reference="Krizhevsky, Learning multiple layers of features from tiny images (tech. report, 2009)",
    needs="data-root",
))
