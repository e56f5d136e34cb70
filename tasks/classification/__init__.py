"""The image-level (classification) track."""
from .track import ClassificationTrack

__all__ = ["ClassificationTrack"]
