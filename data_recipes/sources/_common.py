"""What every dataset source shares: the spec, the registry, splitting, errors and the info record."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...benchmarks.contract.errors import UsageError
from ...benchmarks.contract.registry import Registry
from ..imageset import ImageSet, Source

NEEDS = ("nothing", "data-root", "data-path")


@dataclass(frozen=True)
class SourceSpec:
    """A registered dataset source.

    ``loader`` is called with keyword arguments only: ``data_root``, ``data_path``, ``download``,
    ``split_seed`` and ``test_fraction`` (``None`` = the source's default); it returns a ``Source``.
    ``needs`` says what the user must supply: ``"nothing"`` (embedded), ``"data-root"`` (a folder in
    torchvision's layout, ``--data-root``) or ``"data-path"`` (one file, ``--data-path``).
    ``recipes`` names the recipes the source can take (a real scene set cannot be composed anew,
    so it takes only ``natural`` and selections of its own images), the first being its default;
    None: every recipe of its track.
    """

    name: str
    loader: Callable[..., Source]
    summary: str
    reference: str
    needs: str = "nothing"
    tracks: tuple[str, ...] = ("classification",)
    recipes: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.needs not in NEEDS:
            raise ValueError(f"needs must be one of {NEEDS}, got {self.needs!r}")


SOURCES: Registry[SourceSpec] = Registry("dataset")


def one_line(text: object) -> str:
    """Collapse whitespace (newlines included) so a message fits on one line."""
    return " ".join(str(text).split())


def corrupt(path: str, kind: str, why: object = "",
            hint: str = "delete it and fetch it again (--download) or copy a good copy there") -> UsageError:
    detail = f" ({one_line(why)})" if str(why).strip() else ""
    return UsageError(f"{path} is corrupt or truncated: not a valid {kind} file{detail}; {hint}")


def require_root(name: str, data_root, layout: str) -> str:
    """``data_root`` as given, as a string; a UsageError when it was not given."""
    if data_root is None:
        raise UsageError(f"dataset {name!r} needs --data-root DIR (files expected in {layout})")
    return os.fspath(data_root)


def check_fraction(test_fraction: float) -> float:
    try:
        f = float(test_fraction)
    except (TypeError, ValueError):
        raise UsageError(f"test fraction must be a number in (0, 1), got {test_fraction!r}") from None
    if not 0.0 < f < 1.0:
        raise UsageError(f"test fraction must be in (0, 1), got {test_fraction!r}")
    return f


def stratified_split(labels: np.ndarray, seed: int, test_fraction: float, what: str):
    """Sorted (train_index, test_index) of a seeded, class-stratified split of ``labels``."""
    from sklearn.model_selection import train_test_split

    f = check_fraction(test_fraction)
    try:
        tr, te = train_test_split(
            np.arange(len(labels)), test_size=f, random_state=int(seed), stratify=labels
        )
    except ValueError as e:
        raise UsageError(f"cannot make a stratified {f:g} test split of {what}: {one_line(e)}") from None
    return np.sort(tr), np.sort(te)


def to_imageset(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> ImageSet:
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    # torch wants writable memory; read-only buffers (np.frombuffer) are copied once here.
    imgs = torch.from_numpy(images if images.flags.writeable else images.copy())
    labs = torch.from_numpy(labels if labels.flags.writeable else labels.copy())
    return ImageSet(imgs, labs, list(class_names))


def fingerprint(train: ImageSet, test: ImageSet) -> str:
    """sha256 of train images, train labels, test images, test labels (bytes), first 16 hex chars."""
    h = hashlib.sha256()
    for t in (train.images, train.labels, test.images, test.labels):
        h.update(memoryview(np.ascontiguousarray(t.numpy())).cast("B"))
    return h.hexdigest()[:16]


def build_source(
    name: str,
    *,
    class_names: Sequence[str],
    files: Sequence[str],
    train: tuple[np.ndarray, np.ndarray] | None,
    test: tuple[np.ndarray, np.ndarray] | None,
    split_seed: int,
    test_fraction: float | None,
    default_fraction: float,
    split_from: str | None = None,
    **extra,
) -> Source:
    """Assemble a ``Source`` and its info record.

    Both ``train`` and ``test`` given: the official split (``test_fraction`` ignored). Only one of
    them given: a seeded stratified split of it (``split_from`` names it in the record).
    Arrays are images (N, C, H, W) uint8 and labels (N,) integers.
    """
    spec = SOURCES.get(name) if name in SOURCES else None
    if train is not None and test is not None:
        split: object = "official"
        (xtr, ytr), (xte, yte) = train, test
    else:
        x, y = train if train is not None else test  # type: ignore[misc]
        f = check_fraction(default_fraction if test_fraction is None else test_fraction)
        tr, te = stratified_split(y, split_seed, f, f"{name} ({split_from or 'all'}, {len(y)} images)")
        split = {"kind": "stratified", "seed": int(split_seed), "test_fraction": f}
        (xtr, ytr), (xte, yte) = (x[tr], y[tr]), (x[te], y[te])
    train_set = to_imageset(xtr, ytr, class_names)
    test_set = to_imageset(xte, yte, class_names)
    info = {
        "dataset": name,
        "reference": spec.reference if spec else "",
        "files": [str(p) for p in files],
        "file_names": [os.path.basename(str(p)) for p in files],
        "split": split,
        **({"split_from": split_from} if split_from and split != "official" else {}),
        "image_shape": list(train_set.image_shape),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "sizes": {"train": len(train_set), "test": len(test_set)},
        "class_counts": {"train": train_set.counts(), "test": test_set.counts()},
        "fingerprint": fingerprint(train_set, test_set),
        **extra,
    }
    return Source(name, train_set, test_set, info)


def check_labels(labels: np.ndarray, num_classes: int, path: str, kind: str) -> np.ndarray:
    labels = np.asarray(labels).astype(np.int64, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise corrupt(path, kind, f"labels outside 0..{num_classes - 1}")
    return labels


def run_download(name: str, where: str, fetch: Callable[[], object]) -> None:
    """Call a torchvision dataset constructor with download=True; failures become UsageErrors."""
    try:
        fetch()
    except UsageError:
        raise
    except Exception as e:  # network, checksum, disk: all user-facing
        raise UsageError(
            f"downloading {name} into {where} failed ({type(e).__name__}: {one_line(e)}); "
            "copy the files there by hand"
        ) from None
