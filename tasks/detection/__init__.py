"""The object-level track (detection): models (``models.py``), the training loop (``train.py``),
COCO metrics through pycocotools (``metrics.py``) and the track (``track.py``)."""
from .track import DetectionTrack

__all__ = ["DetectionTrack"]
