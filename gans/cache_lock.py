"""An exclusive lock beside an on-disk cache entry, so that parallel workers (``--jobs``) that
need the same generator or feature extractor train it once: the first takes the lock and
trains, the others wait, then load what it stored. POSIX ``fcntl.flock``; where that is
missing (Windows) the lock is a no-op and a duplicate training is only wasted time (the
entries are written atomically either way)."""
from __future__ import annotations

import contextlib
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextlib.contextmanager
def cache_lock(entry: Path | None):
    """Hold ``<entry>.lock`` exclusively (nothing when ``entry`` is None or on Windows)."""
    if entry is None or fcntl is None:
        yield
        return
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(entry.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
