"""The pixel-level track (segmentation): models (``models.py``), the training loop (``train.py``),
dataset-level metrics from one confusion matrix (``metrics.py``) and the track (``track.py``)."""
from .track import SegmentationTrack

__all__ = ["SegmentationTrack"]
