"""``svhn``: Street View House Numbers, cropped digits (format 2), in torchvision's layout.

Files: ``<data_root>/train_32x32.mat`` and ``<data_root>/test_32x32.mat`` (``extra_32x32.mat`` is
not used), read with ``scipy.io.loadmat``: ``X`` is (32, 32, 3, N) uint8, ``y`` is (N, 1) with the
digits 1..9 and 10 for the digit 0, mapped here to 0 (as torchvision does). Split rules as for
MNIST: both files official, one file a seeded stratified split (default test fraction 0.2),
none a download (``download=True``) or a one-line error.
"""
from __future__ import annotations

import os

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ._common import SOURCES, SourceSpec, build_source, check_labels, corrupt, require_root, run_download

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
DEFAULT_TEST_FRACTION = 0.2
CLASSES = [str(d) for d in range(10)]


def read_mat(path: str):
    """(images (N, 3, 32, 32) uint8, labels 0..9) of one SVHN ``.mat`` file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # MatReadError, ValueError, OSError, zlib errors, ...
        raise corrupt(path, "MATLAB .mat", f"{type(e).__name__}: {e}") from None
    if "X" not in mat or "y" not in mat:
        raise corrupt(path, "SVHN .mat", "variables X and y are missing")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[2] != 3 or y.size != x.shape[3]:
        raise corrupt(path, "SVHN .mat", f"X {x.shape} and y {y.shape}, expected (H, W, 3, N) and N labels")
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 255)):
            raise corrupt(path, "SVHN .mat", f"X has dtype {x.dtype}, expected uint8")
        x = x.astype(np.uint8)
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    return np.transpose(x, (3, 2, 0, 1)), check_labels(labels, len(CLASSES), path, "SVHN .mat")


def load_svhn(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None):
    root = require_root("svhn", data_root, "DIR/train_32x32.mat and DIR/test_32x32.mat")
    paths = {s: os.path.join(root, f) for s, f in FILES.items()}
    present = [s for s, p in paths.items() if os.path.isfile(p)]
    downloaded = False
    if not present:
        if not download:
            raise UsageError(f"no SVHN files in {root} (expected {paths['train']} and {paths['test']}); "
                             "use --download, or copy the .mat files there")
        import torchvision.datasets as tvd

        def fetch():
            for split in FILES:
                tvd.SVHN(root, split=split, download=True)

        run_download("svhn", root, fetch)
        downloaded = True
        present = [s for s, p in paths.items() if os.path.isfile(p)]
        if not present:
            raise UsageError(f"download of svhn left no .mat files in {root}")
    data = {s: read_mat(paths[s]) for s in present}
    if len(data) == 2 and data["train"][0].shape[1:] != data["test"][0].shape[1:]:
        raise UsageError(f"svhn: {paths['train']} and {paths['test']} hold images of different shapes")
    return build_source(
        "svhn",
        class_names=CLASSES,
        files=[paths[s] for s in present],
        train=data.get("train"),
        test=data.get("test"),
        split_seed=split_seed,
        test_fraction=test_fraction,
        default_fraction=DEFAULT_TEST_FRACTION,
        split_from=present[0] if len(present) == 1 else None,
        data_root=root,
        downloaded=downloaded,
    )


SOURCES.register("svhn", SourceSpec(
    name="svhn",
    loader=load_svhn,
    summary="SVHN cropped house-number digits (32x32 RGB, 10 classes, 73k/26k)",
    reference="Netzer et al., Reading digits in natural images with unsupervised feature learning (NIPS workshop, 2011)",
    needs="data-root",
))
