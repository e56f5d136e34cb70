"""Dataset sources: tiny files in each real format, the real MNIST split, and every error path."""
from __future__ import annotations

import gzip
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from imbench.benchmarks.contract.errors import UsageError
from imbench.data_recipes.imageset import Source
from imbench.data_recipes.sources import DEFAULT_DATASET, SOURCES, SourceSpec, clear_cache, load_source

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_MNIST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def usage_error(match: str, fn, *args, **kw) -> str:
    """Call ``fn``; it must raise a one-line UsageError whose message contains ``match``."""
    with pytest.raises(UsageError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert match in msg, msg
    return msg


def labels_for(counts) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def images_for(labels, shape, seed=0) -> np.ndarray:
    """Images whose first pixel is the label, the rest noise: contents can be traced back."""
    x = np.random.default_rng(seed).integers(0, 256, (len(labels), *shape), dtype=np.uint8)
    x.reshape(len(labels), -1)[:, 0] = labels
    return x


# ---------------------------------------------------------------- writers of the real formats
def write_idx(path: Path, arr: np.ndarray, magic: int, gz: bool) -> Path:
    data = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data += np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_idx(root: Path, folder="MNIST", splits=("train", "t10k"), counts=(10, 15, 5), gz=True, hw=(28, 28)):
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, split in enumerate(splits):
        y = labels_for([c * (i + 1) for c in counts])
        x = images_for(y, hw, seed=i)
        write_idx(raw / f"{split}-images-idx3-ubyte", x, 2051, gz)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y, 2049, gz)
        out[split] = (x, y)
    return out


def write_cifar(root: Path, train_counts=(4, 6, 2), test_counts=(3, 3, 3), meta=True, train=True, test=True):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    y_train = labels_for(train_counts)
    x_train = images_for(y_train, (3, 32, 32))
    if train:
        for i, chunk in enumerate(np.array_split(np.arange(len(y_train)), 5), start=1):
            batch = {b"data": x_train[chunk].reshape(len(chunk), -1), b"labels": y_train[chunk].tolist()}
            (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    y_test = labels_for(test_counts)
    x_test = images_for(y_test, (3, 32, 32), seed=1)
    if test:
        (folder / "test_batch").write_bytes(pickle.dumps({b"data": x_test.reshape(len(y_test), -1),
                                                          b"labels": y_test.tolist()}))
    if meta:
        names = [f"c{i}".encode() for i in range(10)]
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return (x_train, y_train), (x_test, y_test)


def write_svhn(root: Path, split: str, digits: np.ndarray, seed=0) -> np.ndarray:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    x = images_for(digits, (3, 32, 32), seed=seed)  # (N, C, H, W)
    y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
    scipy.io.savemat(root / f"{split}_32x32.mat", {"X": np.transpose(x, (2, 3, 1, 0)), "y": y})
    return x


def write_medmnist(path: Path, rgb=False, counts=None, multilabel=False, drop=()):
    counts = counts or {"train": (6, 4, 2), "val": (2, 1, 1), "test": (3, 2, 1)}
    arrays = {}
    for i, (split, c) in enumerate(counts.items()):
        y = labels_for(c)
        x = images_for(y, (28, 28, 3) if rgb else (28, 28), seed=i)
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = np.eye(3, dtype=np.uint8)[y] if multilabel else y[:, None].astype(np.uint8)
    for k in drop:
        del arrays[k]
    np.savez_compressed(path, **arrays)
    return arrays


# ---------------------------------------------------------------- registry and API
def test_registry_lists_every_source_with_its_needs():
    assert DEFAULT_DATASET == "digits"
    needs = {n: SOURCES.get(n).needs for n in SOURCES}
    assert needs == {"digits": "nothing", "mnist": "data-root", "fashion-mnist": "data-root",
                     "kmnist": "data-root", "cifar10": "data-root", "svhn": "data-root",
                     "medmnist": "data-path"}
    for name in SOURCES:
        spec = SOURCES.get(name)
        assert isinstance(spec, SourceSpec) and spec.name == name and callable(spec.loader)
        assert spec.summary and "\n" not in spec.summary and spec.reference
        assert spec.tracks == ("classification",)
    with pytest.raises(Exception):
        spec.name = "x"  # frozen


def test_unknown_dataset_suggests_close_names():
    msg = usage_error("unknown dataset 'mnsit'", load_source, "mnsit")
    assert "did you mean" in msg and "mnist" in msg


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_data_root_is_required(name):
    usage_error("--data-root", load_source, name)


def test_bad_test_fraction():
    usage_error("test fraction", load_source, "digits", test_fraction=1.5)
    usage_error("test fraction", load_source, "digits", test_fraction=0)


# ---------------------------------------------------------------- digits
def test_digits_default_dataset():
    src = load_source("digits")
    assert isinstance(src, Source) and src.name == "digits"
    assert len(src.train) + len(src.test) == 1797
    assert src.train.images.dtype == torch.uint8 and src.train.labels.dtype == torch.int64
    assert src.train.image_shape == (1, 8, 8) and src.train.class_names == [str(d) for d in range(10)]
    assert max(int(src.train.images.max()), int(src.test.images.max())) == 255
    assert src.info["split"] == {"kind": "stratified", "seed": 0, "test_fraction": 0.3}
    assert len(src.test) == 540  # ceil(0.3 * 1797)
    total = np.add(src.info["class_counts"]["train"], src.info["class_counts"]["test"])
    from sklearn.datasets import load_digits

    assert total.tolist() == np.bincount(load_digits().target).tolist()
    assert re.fullmatch(r"[0-9a-f]{16}", src.info["fingerprint"])
    # pixel values: round(v * 255 / 16)
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(torch.unique(src.train.images).tolist()) <= allowed


def test_stratified_split_is_seeded_and_proportional():
    a, b, c = (load_source("digits", split_seed=s) for s in (0, 0, 1))
    assert a is b  # cached in-process
    clear_cache()
    a2 = load_source("digits", split_seed=0)
    assert a2 is not a and torch.equal(a2.test.images, a.test.images)
    assert a2.info["fingerprint"] == a.info["fingerprint"]
    assert not torch.equal(a.test.images, c.test.images) and a.info["fingerprint"] != c.info["fingerprint"]
    assert c.info["split"]["seed"] == 1
    for src in (a, c):
        train, test = np.array(src.info["class_counts"]["train"]), np.array(src.info["class_counts"]["test"])
        assert np.all(np.abs(test - 0.3 * (train + test)) <= 1)
    d = load_source("digits", test_fraction=0.5)
    assert abs(len(d.test) - 1797 / 2) <= 1 and d.info["split"]["test_fraction"] == 0.5


# ---------------------------------------------------------------- IDX (MNIST family)
@pytest.mark.parametrize("name,folder,first,gz", [
    ("mnist", "MNIST", "0", True),
    ("fashion-mnist", "FashionMNIST", "T-shirt/top", False),
    ("kmnist", "KMNIST", "o", True),
])
def test_idx_official_split(tmp_path, name, folder, first, gz):
    data = make_idx(tmp_path, folder, gz=gz)
    src = load_source(name, data_root=tmp_path, test_fraction=0.5)  # fraction ignored: official split
    assert src.info["split"] == "official"
    assert src.train.class_names[0] == first and len(src.train.class_names) == 10
    assert src.train.images.shape == (30, 1, 28, 28) and src.test.images.shape == (60, 1, 28, 28)
    assert src.train.images.dtype == torch.uint8 and src.test.labels.dtype == torch.int64
    assert src.info["class_counts"] == {"train": [10, 15, 5] + [0] * 7, "test": [20, 30, 10] + [0] * 7}
    assert np.array_equal(src.train.images[:, 0].numpy(), data["train"][0])
    assert np.array_equal(src.test.labels.numpy(), data["t10k"][1])
    assert src.info["image_shape"] == [1, 28, 28]
    suffix = ".gz" if gz else ""
    assert src.info["file_names"] == [f"train-images-idx3-ubyte{suffix}", f"train-labels-idx1-ubyte{suffix}",
                                      f"t10k-images-idx3-ubyte{suffix}", f"t10k-labels-idx1-ubyte{suffix}"]
    assert src.info["files"][0] == os.path.join(str(tmp_path), folder, "raw", src.info["file_names"][0])


def test_idx_single_split_is_split_stratified(tmp_path):
    make_idx(tmp_path, splits=("t10k",), counts=(50, 25, 100))
    a = load_source("mnist", data_root=tmp_path)
    assert a.info["split"] == {"kind": "stratified", "seed": 0, "test_fraction": 0.2}
    assert a.info["split_from"] == "t10k"
    assert a.info["class_counts"]["test"][:3] == [10, 5, 20] and a.info["class_counts"]["train"][:3] == [40, 20, 80]
    again = load_source("mnist", data_root=str(tmp_path))
    assert torch.equal(again.test.images, a.test.images)
    other = load_source("mnist", data_root=tmp_path, split_seed=3)
    assert other.info["class_counts"] == a.info["class_counts"]
    assert not torch.equal(other.test.images, a.test.images)
    half = load_source("mnist", data_root=tmp_path, test_fraction=0.5)
    assert sum(half.info["class_counts"]["test"]) == 88  # ceil(0.5 * 175)
    assert all(abs(t - n / 2) <= 1 for t, n in zip(half.info["class_counts"]["test"], (50, 25, 100)))


def test_idx_missing_root_says_where_and_how(tmp_path):
    msg = usage_error(os.path.join(str(tmp_path), "KMNIST", "raw"), load_source, "kmnist", data_root=tmp_path)
    assert "--download" in msg and "t10k-images-idx3-ubyte" in msg


def test_idx_download_calls_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            make_idx(Path(root), "MNIST", gz=False)

    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)
    src = load_source("mnist", data_root=tmp_path, download=True)
    assert calls and calls[0][2] is True and src.info["downloaded"] is True and src.info["split"] == "official"

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nno network")

    monkeypatch.setattr(tvd, "FashionMNIST", Offline)
    usage_error("downloading fashion-mnist", load_source, "fashion-mnist", data_root=tmp_path, download=True)


@pytest.mark.parametrize("damage,expect", [
    ("magic", "magic number 2049, expected 2051"),
    ("truncate-gz", "corrupt"),
    ("short", "header says"),
    ("not-gzip", "corrupt"),
])
def test_idx_corrupt_files(tmp_path, damage, expect):
    make_idx(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    labels = gzip.decompress((tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").read_bytes())
    raw = gzip.decompress(path.read_bytes())
    if damage == "magic":
        path.write_bytes(gzip.compress(labels))
    elif damage == "truncate-gz":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "short":
        path.write_bytes(gzip.compress(raw[:-100]))
    else:
        path.write_bytes(b"this is not gzip at all")
    msg = usage_error(str(path), load_source, "mnist", data_root=tmp_path)
    assert expect in msg


def test_idx_label_count_mismatch_and_missing_partner(tmp_path):
    make_idx(tmp_path, gz=False)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), 2049, gz=False)
    usage_error("has 3 labels", load_source, "mnist", data_root=tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    usage_error(str(raw / "t10k-labels-idx1-ubyte"), load_source, "mnist", data_root=tmp_path)


@pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="shared MNIST test split absent")
def test_real_mnist_split():
    src = load_source("mnist", data_root=str(SHARED))
    assert len(src.train) == 8000 and len(src.test) == 2000
    assert src.info["split"] == {"kind": "stratified", "seed": 0, "test_fraction": 0.2}
    total = np.add(src.info["class_counts"]["train"], src.info["class_counts"]["test"])
    assert total.tolist() == REAL_MNIST_COUNTS
    assert src.train.image_shape == (1, 28, 28) and src.train.images.dtype == torch.uint8
    assert src.info["file_names"] == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert load_source("mnist", data_root=str(SHARED)) is src


# ---------------------------------------------------------------- CIFAR-10
def test_cifar10_official(tmp_path):
    (xtr, ytr), (xte, yte) = write_cifar(tmp_path)
    src = load_source("cifar10", data_root=tmp_path)
    assert src.info["split"] == "official"
    assert src.train.images.shape == (12, 3, 32, 32) and src.test.images.shape == (9, 3, 32, 32)
    assert np.array_equal(src.train.images.numpy(), xtr) and np.array_equal(src.test.labels.numpy(), yte)
    assert src.train.class_names == [f"c{i}" for i in range(10)]
    assert src.info["class_counts"]["train"][:3] == [4, 6, 2] and sum(src.info["class_counts"]["test"]) == 9
    assert "batches.meta" in src.info["file_names"] and "data_batch_5" in src.info["file_names"]


def test_cifar10_default_names_and_single_split(tmp_path):
    write_cifar(tmp_path, test_counts=(10, 20, 5), meta=False, train=False)
    src = load_source("cifar10", data_root=tmp_path)
    assert src.train.class_names[0] == "airplane" and src.train.class_names[-1] == "truck"
    assert src.info["split"]["kind"] == "stratified" and src.info["split_from"] == "test"
    assert src.info["class_counts"]["test"][:3] == [2, 4, 1]


def test_cifar10_errors(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    msg = usage_error(str(folder), load_source, "cifar10", data_root=tmp_path)
    assert "--download" in msg
    write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    usage_error(str(folder / "data_batch_3"), load_source, "cifar10", data_root=tmp_path)
    write_cifar(tmp_path)
    good = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(good[: len(good) // 2])
    usage_error(str(folder / "test_batch"), load_source, "cifar10", data_root=tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    usage_error("corrupt", load_source, "cifar10", data_root=tmp_path)


# ---------------------------------------------------------------- SVHN
def test_svhn_maps_10_to_0(tmp_path):
    digits_train = labels_for([3, 2, 2, 1, 1, 1, 1, 1, 1, 2])
    xtr = write_svhn(tmp_path, "train", digits_train)
    write_svhn(tmp_path, "test", labels_for([1] * 10), seed=1)
    src = load_source("svhn", data_root=tmp_path)
    assert src.info["split"] == "official"
    assert src.train.labels.tolist() == digits_train.tolist()  # stored 10 came back as 0
    assert src.info["class_counts"]["train"] == [3, 2, 2, 1, 1, 1, 1, 1, 1, 2]
    assert src.train.images.shape == (15, 3, 32, 32) and np.array_equal(src.train.images.numpy(), xtr)
    assert src.info["file_names"] == ["train_32x32.mat", "test_32x32.mat"]


def test_svhn_single_split_and_errors(tmp_path):
    msg = usage_error(str(tmp_path / "train_32x32.mat"), load_source, "svhn", data_root=tmp_path)
    assert "--download" in msg
    write_svhn(tmp_path, "train", labels_for([5] * 10))
    src = load_source("svhn", data_root=tmp_path)
    assert src.info["split"] == {"kind": "stratified", "seed": 0, "test_fraction": 0.2}
    assert src.info["class_counts"]["test"] == [1] * 10 and src.info["split_from"] == "train"
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage" * 3)
    usage_error(str(tmp_path / "test_32x32.mat"), load_source, "svhn", data_root=tmp_path)


# ---------------------------------------------------------------- MedMNIST
@pytest.mark.parametrize("rgb", [False, True])
def test_medmnist_merges_val_into_train(tmp_path, rgb):
    path = tmp_path / ("bloodmnist.npz" if rgb else "pneumoniamnist.npz")
    arrays = write_medmnist(path, rgb=rgb)
    src = load_source("medmnist", data_path=path)
    c = 3 if rgb else 1
    assert src.train.images.shape == (16, c, 28, 28) and src.test.images.shape == (6, c, 28, 28)
    assert src.info["class_counts"] == {"train": [8, 5, 3], "test": [3, 2, 1]}
    assert src.train.class_names == ["0", "1", "2"] and src.info["split"] == "official"
    assert src.info["merged"]["train"] == ["train", "val"] and src.info["merged"]["sizes"] == {"train": 12, "val": 4}
    want = arrays["train_images"][:, None] if not rgb else np.transpose(arrays["train_images"], (0, 3, 1, 2))
    assert np.array_equal(src.train.images[:12].numpy(), want)
    assert src.info["files"] == [str(path)] and src.info["file_names"] == [path.name]


def test_medmnist_errors(tmp_path):
    usage_error("--data-path FILE.npz", load_source, "medmnist")
    usage_error(str(tmp_path / "nope.npz"), load_source, "medmnist", data_path=tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    usage_error(str(bad), load_source, "medmnist", data_path=bad)
    keys = tmp_path / "keys.npz"
    write_medmnist(keys, drop=("val_labels",))
    msg = usage_error(str(keys), load_source, "medmnist", data_path=keys)
    assert "val_labels" in msg
    multi = tmp_path / "chestmnist.npz"
    write_medmnist(multi, multilabel=True)
    usage_error("multi-label", load_source, "medmnist", data_path=multi)
    trunc = tmp_path / "trunc.npz"
    write_medmnist(trunc)
    trunc.write_bytes(trunc.read_bytes()[:-200])
    usage_error(str(trunc), load_source, "medmnist", data_path=trunc)
