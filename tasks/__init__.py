"""One subpackage per track: models, training loop, evaluation, metrics.

Importing this package registers the built-in tracks in ``TRACKS`` (the registry and the
:class:`~imbench.benchmarks.contract.track.Track` interface live in the contract layer).
"""
from ..benchmarks.contract.track import TRACKS, CellOutcome, DivergenceError, Track, get_track

from . import classification, detection, segmentation  # noqa: E402,F401  (register the tracks)

__all__ = ["TRACKS", "CellOutcome", "DivergenceError", "Track", "get_track"]
