"""Messages to the terminal, and the one error type the commands turn into `[stack] ERROR: ...` and exit 1."""

from __future__ import annotations

import sys


class StackError(Exception):
    """A problem the user can fix (a busy port, a missing binary, a timeout); the message says how."""


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def error(msg: str) -> None:
    print(f"[stack] ERROR: {msg}", file=sys.stderr, flush=True)
