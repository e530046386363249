"""Logging helpers: peer data is sanitised before it reaches a log line."""

from __future__ import annotations

import logging

_LIMIT = 120


def sanitize(value: object, limit: int = _LIMIT) -> str:
    """Return ``value`` fit for one log line: control characters escaped, length bounded.

    A caller name or a header from a peer can hold anything, including newlines that would
    forge log lines; this keeps printable text as is and escapes the rest.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return text.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def configure(level: str) -> None:
    """Send logs to stderr with timestamps at ``level``."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
