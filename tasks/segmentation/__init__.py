"""The pixel-level track (segmentation): so far its metrics (``metrics.py``); the track itself
(data, models, losses, training) is issue 10's next step."""
