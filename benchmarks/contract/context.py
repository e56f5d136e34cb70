"""What a method may know about the cell it runs in (:class:`Context`)."""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FREQUENCY_GROUPS = ("rare", "common", "frequent")


def frequency_groups(image_counts: list[int]) -> dict[str, list[int]]:
    """Classes split into LVIS's ``rare`` / ``common`` / ``frequent`` groups by the number of
    training images that hold them.

    LVIS (Gupta et al. 2019) uses fixed image counts (1-10, 11-100, >100) on a set of 100k
    images: three decades of frequency. A benchmark set of a few hundred images would put every
    class in one group, so the same idea is scaled to the set: the log range between the rarest
    present class and the most frequent one is cut into three equal parts (a class with
    ``log n`` in the lowest third is rare, the top third frequent). A balanced set (one count) is
    all ``frequent``; a class with no image is ``rare``.
    """
    present = [n for n in image_counts if n > 0]
    groups: dict[str, list[int]] = {g: [] for g in FREQUENCY_GROUPS}
    if not present:
        return groups
    lo, hi = math.log(min(present)), math.log(max(present))
    for c, n in enumerate(image_counts):
        if n <= 0:
            groups["rare"].append(c)
        elif hi - lo < 1e-12:
            groups["frequent"].append(c)
        else:
            third = min(int(3 * (math.log(n) - lo) / (hi - lo)), 2)
            groups[FREQUENCY_GROUPS[third]].append(c)
    return groups


@dataclass
class Context:
    """What a method may know about the cell it runs in.

    Counts are those of the imbalanced training split as the recipe made it (before
    ``prepare``): ``instance_counts[c]`` the objects (classification: images) of class ``c``,
    ``image_counts[c]`` the images holding at least one of them (classification: the same
    list; defaults to ``instance_counts``); :attr:`frequency_groups` splits the classes into
    rare / common / frequent as LVIS does. ``minority`` are the class indices the recipe made
    minority (tail); ``budget`` the profile's budgets for this track (epochs, batch size, ...);
    ``record`` a dict whose items land under ``extras`` in the cell's record, ``metrics`` one
    whose items are merged into the record's ``metrics`` (e.g. generated-sample quality);
    ``source`` the balanced source (its untouched training split serves as the reference for
    generated samples; never train the benchmarked model on its test split); ``data_key`` what
    identifies the cell's data (source fingerprint, split, recipe, seed: a cache key part);
    ``artifacts_dir`` / ``artifact_stem`` where a method may save files (e.g. sample grids),
    None when the cell is not run by the runner; ``test`` the cell's evaluation split (in the
    recipe's label space) for *assessing generated samples only* (CAS: train on generated, test
    on real) -- a method must never train the benchmarked model on it; None outside the runner;
    ``val`` the validation split a cell with ``validation: F`` carved from the recipe's training
    set (``data_recipes/validation.py``; it trains on the rest) -- such a cell is evaluated on it, so
    ``test`` is that same split and the test split never reaches it; None in every other cell;
    ``model_info`` what the track says of the model a method adapts or whose loss it replaces
    (detection: ``{"name", "head": "sigmoid" | "softmax"}``); ``ignore_index`` the label of void
    pixels that no loss may count (segmentation; None elsewhere); ``optimizer`` and
    ``steps_per_epoch`` the training loop's optimizer and the optimizer steps of a nominal epoch,
    set when the loop starts (a stage that starts afresh may clear the optimizer's state of the
    parameters it re-initialises); None / 0 before.
    """

    track: str
    class_names: list[str]
    instance_counts: list[int]
    minority: list[int]
    seed: int
    image_counts: list[int] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    budget: dict = field(default_factory=dict)
    dataset: str = ""
    recipe: dict = field(default_factory=dict)
    cache_dir: Path | None = None
    quiet: bool = True
    epoch: int = 0
    epochs: int = 0
    record: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    source: Any = None
    data_key: dict = field(default_factory=dict)
    artifacts_dir: Path | None = None
    artifact_stem: str = "cell"
    test: Any = None
    val: Any = None
    model_info: dict = field(default_factory=dict)
    ignore_index: int | None = None
    optimizer: Any = None
    steps_per_epoch: int = 0

    def __post_init__(self) -> None:
        self.instance_counts = [int(n) for n in self.instance_counts]
        self.image_counts = list(self.instance_counts if self.image_counts is None else map(int, self.image_counts))
        if len(self.instance_counts) != len(self.class_names) or len(self.image_counts) != len(self.class_names):
            raise ValueError("instance_counts and image_counts need one entry per class")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> list[int]:
        """Deprecated alias of :attr:`instance_counts` (plugins written for 0.1)."""
        return self.instance_counts

    @property
    def frequency_groups(self) -> dict[str, list[int]]:
        """``{"rare": [...], "common": [...], "frequent": [...]}`` (see :func:`frequency_groups`)."""
        return frequency_groups(self.image_counts)

    def with_counts_of(self, train) -> "Context":
        """A copy (sharing ``record``, ``metrics``, ``source``) whose counts are those of
        ``train`` (any training-set type with ``instance_counts()`` and ``image_counts()``)."""
        return dataclasses.replace(self, instance_counts=list(train.instance_counts()),
                                   image_counts=list(train.image_counts()))

    def _seed_for(self, salt: str) -> int:
        digest = hashlib.sha256(f"{self.seed}:{salt}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def rng(self, salt: str) -> np.random.Generator:
        """A NumPy generator determined by the cell's seed and ``salt``."""
        return np.random.default_rng(self._seed_for(salt))

    def generator(self, salt: str) -> torch.Generator:
        """A CPU torch generator determined by the cell's seed and ``salt``."""
        return torch.Generator().manual_seed(self._seed_for(salt))

    def note(self, key: str, value: Any) -> None:
        """Put ``value`` in the record under ``extras[key]`` (must be JSON-serialisable)."""
        self.record[key] = value
