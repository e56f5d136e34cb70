"""The one error type that the CLI turns into a one-line message and exit code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input from the user (unknown name, impossible parameter, missing data).

    The CLI prints ``imbench: error: <message>`` on one line and exits with code 2;
    nothing is written before these errors are raised.
    """


def unknown(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    """A ``UsageError`` for an unknown name that suggests the closest known names."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UsageError(f"unknown {kind} {name!r}{hint} (known: {', '.join(choices)})")
