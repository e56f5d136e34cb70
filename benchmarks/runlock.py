"""One live run per output folder, and the log of the commands that wrote it.

``imbench run`` holds an exclusive ``flock`` on ``<out>/.imbench-run.lock`` for as long as it
runs and writes who holds it (pid, host, start time, command) into the file. A second run into
the same ``--out`` is refused with a one-line error naming the holder. The operating system
drops the lock when its process dies, so a lock file left by a killed run does not block.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

from .contract.errors import UsageError

LOCK_NAME = ".imbench-run.lock"
COMMANDS_NAME = "commands.jsonl"


class RunLock:
    def __init__(self, out: Path, command: str = ""):
        self.path = Path(out) / LOCK_NAME
        self.command = command or " ".join(["imbench", *sys.argv[1:]])
        self._fh = None

    def acquire(self) -> "RunLock":
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _describe(fh.read())
            fh.close()
            raise UsageError(f"{self.path.parent} is in use by another imbench run ({holder}); "
                             "wait for it to finish or pass another --out") from None
        fh.seek(0)
        fh.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "command": self.command}, fh)
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def note_command(out: Path, cells: list[dict], command: str) -> Path:
    """Append this invocation to ``<out>/commands.jsonl``: the command line, when, and the
    identities of the cells it planned (the report lists planned cells without a record as
    missing). Called while the run holds the lock."""
    from .contract.identity import config_hash
    from .labels import labels

    path = Path(out) / COMMANDS_NAME
    entry = {"command": command, "cwd": os.getcwd(),
             "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "cells": {config_hash(c): labels(c)["cell"] for c in cells}}
    with open(path, "a") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return path
