"""One module (or subpackage) per track: models, training loop, evaluation, metrics.

``TRACKS`` maps a track name to its :class:`~imbench.tasks.track.Track`; importing this
package registers the built-in tracks.
"""
from .track import TRACKS, CellOutcome, DivergenceError, Track, get_track

from . import classification  # noqa: E402,F401  (registers the track)

__all__ = ["TRACKS", "CellOutcome", "DivergenceError", "Track", "get_track"]
