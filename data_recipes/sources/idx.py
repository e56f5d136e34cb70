"""``mnist``, ``fashion-mnist``, ``kmnist``: IDX files in torchvision's layout.

Files are looked up in ``<data_root>/<Folder>/raw/`` (``MNIST``, ``FashionMNIST``, ``KMNIST``), as
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each either uncompressed or ``.gz`` (the uncompressed file wins when
both exist). Both splits present: the official split. Only one present (the shared MNIST holds
only t10k): a seeded stratified split of it (default test fraction 0.2). Neither present: a
torchvision download with ``download=True``, else a one-line ``UsageError``.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from ...benchmarks.contract.errors import UsageError
from ._common import SOURCES, SourceSpec, build_source, check_labels, corrupt, require_root, run_download

DEFAULT_TEST_FRACTION = 0.2
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x0803: uint8, 3 dims; 0x0801: uint8, 1 dim
STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# name -> (torchvision folder/class, class names, summary, reference)
DATASETS = {
    "mnist": ("MNIST", [str(d) for d in range(10)],
              "MNIST handwritten digits (28x28 gray, 10 classes, 60k/10k)",
              "LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition (1998)"),
    "fashion-mnist": ("FashionMNIST",
                      ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
                      "Fashion-MNIST Zalando article images (28x28 gray, 10 classes, 60k/10k)",
                      "Xiao, Rasul & Vollgraf, Fashion-MNIST (arXiv:1708.07747, 2017)"),
    "kmnist": ("KMNIST", ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
               "Kuzushiji-MNIST cursive Japanese hiragana (28x28 gray, 10 classes, 60k/10k)",
               "Clanuwat et al., Deep learning for classical Japanese literature (arXiv:1812.01718, 2018)"),
}


def read_bytes(path: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise corrupt(path, "gzip" if path.endswith(".gz") else "IDX", e) from None


def read_idx(path: str, magic: int) -> np.ndarray:
    """Parse one IDX file (uint8 payload), checking magic number, dimensions and size."""
    data = read_bytes(path)
    if len(data) < 4:
        raise corrupt(path, "IDX", f"{len(data)} bytes, shorter than the header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise corrupt(path, "IDX", f"magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise corrupt(path, "IDX", f"{len(data)} bytes, shorter than the {header}-byte header")
    dims = [int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4)]
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        shape = "x".join(map(str, dims))
        raise corrupt(path, "IDX", f"header says {shape} = {size} bytes of data, file holds {len(data) - header}")
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(dims)


def find(raw: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        path = os.path.join(raw, name)
        if os.path.isfile(path):
            return path
    return None


def read_split(raw: str, split: str, num_classes: int):
    """(images (N,1,H,W), labels, [files]) of one split, or None when neither of its files exists."""
    img_stem, lab_stem = STEMS[split]
    img_path, lab_path = find(raw, img_stem), find(raw, lab_stem)
    if img_path is None and lab_path is None:
        return None
    if img_path is None or lab_path is None:
        missing = img_stem if img_path is None else lab_stem
        raise UsageError(f"{os.path.join(raw, missing)}[.gz] is missing (its {split} partner is there); "
                         "copy it there or use --download")
    images = read_idx(img_path, IMAGES_MAGIC)
    labels = check_labels(read_idx(lab_path, LABELS_MAGIC), num_classes, lab_path, "IDX")
    if len(labels) != len(images):
        raise corrupt(img_path, "IDX", f"{len(images)} images but {lab_path} has {len(labels)} labels")
    return images[:, None], labels, [img_path, lab_path]


def make_loader(name: str):
    folder, classes, _, _ = DATASETS[name]

    def load(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None):
        root = require_root(name, data_root, f"DIR/{folder}/raw/")
        raw = os.path.join(root, folder, "raw")
        splits = {s: read_split(raw, s, len(classes)) for s in STEMS}
        downloaded = False
        if splits["train"] is None and splits["t10k"] is None:
            if not download:
                expected = ", ".join(f"{s}[.gz]" for pair in STEMS.values() for s in pair)
                raise UsageError(f"no {folder} IDX files in {raw} (expected {expected}); "
                                 "use --download, or copy the IDX files there")
            import torchvision.datasets as tvd
            run_download(name, root, lambda: getattr(tvd, folder)(root, train=True, download=True))
            downloaded = True
            splits = {s: read_split(raw, s, len(classes)) for s in STEMS}
            if splits["train"] is None and splits["t10k"] is None:
                raise UsageError(f"download of {name} left no IDX files in {raw}")
        train, test = splits["train"], splits["t10k"]
        if train is not None and test is not None and train[0].shape[1:] != test[0].shape[1:]:
            raise UsageError(f"{name}: train images {train[0].shape[1:]} and t10k images "
                             f"{test[0].shape[1:]} in {raw} differ in shape; one of the files is wrong")
        present = [s for s in STEMS if splits[s] is not None]
        return build_source(
            name,
            class_names=classes,
            files=[p for s in present for p in splits[s][2]],
            train=train[:2] if train is not None else None,
            test=test[:2] if test is not None else None,
            split_seed=split_seed,
            test_fraction=test_fraction,
            default_fraction=DEFAULT_TEST_FRACTION,
            split_from=present[0] if len(present) == 1 else None,
            data_root=root,
            downloaded=downloaded,
        )

    load.__name__ = load.__qualname__ = f"load_{name.replace('-', '_')}"
    return load


for _name, (_folder, _classes, _summary, _ref) in DATASETS.items():
    SOURCES.register(_name, SourceSpec(name=_name, loader=make_loader(_name), summary=_summary,
                                       reference=_ref, needs="data-root"))
