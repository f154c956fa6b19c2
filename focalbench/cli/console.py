"""The command line's console: messages to stderr, and the one-line usage error (exit 2). A leaf: nothing of
focalbench is imported here."""

from __future__ import annotations

import sys

__all__ = ["UsageError", "eprint"]


class UsageError(ValueError):
    """A bad argument value: reported in one line, exit 2."""


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)
