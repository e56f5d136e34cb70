"""``medmnist``: any 2-D MedMNIST ``.npz`` file (``--data-path FILE.npz``).

Keys ``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images``,
``test_labels``; images (N, H, W) gray or (N, H, W, 3) RGB uint8, labels (N, 1) class indices.
The validation split is merged into train (recorded as ``info["merged"]``); the test split is
the official one. Class names are ``"0"`` .. ``"K-1"`` with K = max label + 1 over all splits.
Multi-label files (ChestMNIST: labels (N, 14)) and 3-D volumes are rejected.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ._common import SOURCES, SourceSpec, build_source
from ._common import corrupt as _corrupt

SPLITS = ("train", "val", "test")
KEYS = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
HINT = "download it again from https://medmnist.com (or with the medmnist package)"


def corrupt(path: str, kind: str, why: object = ""):
    return _corrupt(path, kind, why, hint=HINT)


def read_npz(path: str) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise corrupt(path, "MedMNIST .npz", "not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise UsageError(f"{path} is not a MedMNIST .npz: missing keys {', '.join(missing)}")
            return {k: z[k] for k in KEYS}
    except UsageError:
        raise
    except Exception as e:  # BadZipFile, ValueError, OSError, EOFError, zlib errors, ...
        raise corrupt(path, "MedMNIST .npz", f"{type(e).__name__}: {e}") from None


def split_arrays(path: str, arrays: dict, split: str):
    x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if y.ndim == 2 and y.shape[1] > 1:
        raise UsageError(f"{path} is multi-label ({split}_labels {y.shape}); only single-label MedMNIST files are supported")
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        raise corrupt(path, "MedMNIST .npz", f"{split}_labels {y.dtype} {y.shape} for {len(x)} images")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] == 3:
        x = np.transpose(x, (0, 3, 1, 2))
    else:
        raise UsageError(f"{path}: {split}_images has shape {x.shape}; expected 2-D images (N, H, W) or (N, H, W, 3)"
                         " (3-D MedMNIST volumes are not supported)")
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 255)):
            raise UsageError(f"{path}: {split}_images has dtype {x.dtype}; expected uint8 pixels 0..255")
        x = x.astype(np.uint8)
    if y.size and y.min() < 0:
        raise corrupt(path, "MedMNIST .npz", f"negative labels in {split}_labels")
    return x, y.astype(np.int64)


def load_medmnist(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None):
    if data_path is None:
        raise UsageError("dataset 'medmnist' needs --data-path FILE.npz (a 2-D MedMNIST file such as pathmnist.npz)")
    path = os.fspath(data_path)
    if not os.path.isfile(path):
        raise UsageError(f"{path} does not exist or is not a file; medmnist needs --data-path FILE.npz "
                         f"({HINT.replace('again ', '')})")
    arrays = read_npz(path)
    data = {s: split_arrays(path, arrays, s) for s in SPLITS}
    shapes = {data[s][0].shape[1:] for s in SPLITS}
    if len(shapes) > 1:
        raise UsageError(f"{path}: the splits hold images of different shapes {sorted(shapes)}")
    num_classes = max(int(data[s][1].max()) + 1 for s in SPLITS if data[s][1].size) if any(
        data[s][1].size for s in SPLITS) else 0
    if num_classes == 0:
        raise UsageError(f"{path} holds no images")
    train = (np.concatenate([data["train"][0], data["val"][0]]), np.concatenate([data["train"][1], data["val"][1]]))
    return build_source(
        "medmnist",
        class_names=[str(c) for c in range(num_classes)],
        files=[path],
        train=train,
        test=data["test"],
        split_seed=split_seed,
        test_fraction=test_fraction,
        default_fraction=0.2,
        merged={"train": ["train", "val"], "sizes": {s: len(data[s][1]) for s in ("train", "val")}},
        flavour=os.path.splitext(os.path.basename(path))[0],
    )


SOURCES.register("medmnist", SourceSpec(
    name="medmnist",
    loader=load_medmnist,
    summary="any 2-D single-label MedMNIST .npz (e.g. pathmnist, bloodmnist; 28..224 px, gray or RGB)",
    reference="Yang et al., MedMNIST v2 (Scientific Data, 2023)",
    needs="data-path",
))
