"""The track contract shared by classification, detection and segmentation."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .method import Method
from .registry import Registry


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss; the cell is recorded as failed."""


@dataclass
class CellOutcome:
    """What a track returns for one cell; the runner turns it into a record."""

    metrics: dict[str, Any]
    class_counts: dict[str, Any]
    timings: dict[str, float]
    extras: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # budget unit, train_steps, images_seen


class Track(ABC):
    """A level of the survey's taxonomy, runnable cell by cell.

    ``validate(cell, runtime)`` loads the data and applies the recipe without training, so a
    suite can reject impossible cells before anything is written, and returns what identifies
    the data read (``{"fingerprint": ...}``, merged into the cell's ``dataset``); ``run(cell, method,
    runtime, progress)`` trains and evaluates one cell and returns a :class:`CellOutcome`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    default_dataset: ClassVar[str] = ""
    headline_metric: ClassVar[str] = ""
    # what the report shows (every record carries it as ``track_info``; results/ names no track):
    # the scalar metrics, the per-class metric (a list per record) and those where lower is better
    report_metrics: ClassVar[tuple[str, ...]] = ()
    per_class_metric: ClassVar[str] = ""
    lower_is_better: ClassVar[tuple[str, ...]] = ()
    table_metrics: ClassVar[tuple[str, ...]] = ()  # the columns of the printed leaderboard
    augment_policies: ClassVar[tuple[str, ...]] = ("none",)  # the profile's ``augment`` values
    resizable: ClassVar[bool] = False  # its datasets take ``image_size`` (``--image-size``)

    @classmethod
    def info(cls) -> dict:
        """The track's declaration for the aggregator, stored in every record as ``track_info``."""
        return {"headline": cls.headline_metric, "metrics": list(cls.report_metrics),
                "per_class": cls.per_class_metric, "lower_is_better": list(cls.lower_is_better),
                "table": list(cls.table_metrics or (cls.headline_metric,))}

    @abstractmethod
    def datasets(self) -> Registry:
        """The dataset sources this track can load."""

    @abstractmethod
    def recipes(self) -> Registry:
        """The imbalance recipes this track can apply."""

    @abstractmethod
    def models(self) -> Registry:
        """The models this track can train."""

    @abstractmethod
    def resolve_recipe(self, name: str, params: dict) -> dict:
        """Recipe ``name``'s full parameters: defaults filled in, command-line text converted,
        data-free range checks applied (``UsageError``); idempotent."""

    @abstractmethod
    def validate(self, cell: dict, runtime: dict) -> dict:
        """Raise ``UsageError`` if the cell cannot run (bad data, impossible recipe); return the
        data's identity (at least ``{"fingerprint": <content hash of the split read>}``)."""

    @abstractmethod
    def run(self, cell: dict, method: Method, runtime: dict, progress) -> CellOutcome:
        """Prepare, train and evaluate one cell."""


TRACKS: Registry[Track] = Registry("track")


def get_track(name: str) -> Track:
    return TRACKS.get(name)
