"""The real Asterisk FastAGI recordings the protocol tests replay.

Each file is JSON lines of ``{"t": seconds, "dir": "in" | "out" | "note", "data": text}``
(``in`` = Asterisk to the router). The directory is, in order of preference:

1. the one named by the environment variable ``FASTAGI_ROUTER_TRANSCRIPTS``;
2. the copy kept in this repository, ``tests/data/asterisk-transcripts/``;
3. ``../shared/asterisk-transcripts/`` beside the checkout, where they were recorded.

A missing directory is an error, never a skip: these recordings are what the protocol layer
is held to, and a suite that quietly skips them proves nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

ENV_VAR = "FASTAGI_ROUTER_TRANSCRIPTS"
REPO_ROOT = Path(__file__).resolve().parent.parent
IN_REPO = REPO_ROOT / "tests" / "data" / "asterisk-transcripts"
SHARED = REPO_ROOT.parent / "shared" / "asterisk-transcripts"

LOOKUP = "01-lookup-commands-and-dtmf.jsonl"
HANGUP = "02-caller-hangs-up-during-get-data.jsonl"
CLOSE = "03-server-closes-after-headers.jsonl"
NO_SCRIPT = "04-no-script-anonymous-caller.jsonl"
NAMES = (LOOKUP, HANGUP, CLOSE, NO_SCRIPT)


class Entry(NamedTuple):
    """One recorded write: when, which way, and what (text as it was on the wire)."""

    t: float
    dir: str
    data: str

    @property
    def raw(self) -> bytes:
        """The bytes on the wire."""
        return self.data.encode("utf-8")


def directory() -> Path:
    """Return the directory holding the recordings.

    Raises `FileNotFoundError` naming every place looked at when none holds them.
    """
    override = os.environ.get(ENV_VAR)
    candidates = [Path(override)] if override else [IN_REPO, SHARED]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in NAMES):
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Asterisk transcripts not found (looked in {tried}); set {ENV_VAR} to their directory"
    )


def load(name: str) -> list[Entry]:
    """Return the entries of one recording, in order."""
    entries = []
    with (directory() / name).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                entries.append(Entry(float(record["t"]), record["dir"], record["data"]))
    return entries


def load_all() -> dict[str, list[Entry]]:
    """Return every recording by file name."""
    return {name: load(name) for name in NAMES}


def header_block(entries: list[Entry]) -> bytes:
    """The header block: the first thing Asterisk sends."""
    first = entries[0]
    assert first.dir == "in" and first.data.endswith("\n\n"), first
    return first.raw


def in_lines(entries: list[Entry]) -> list[str]:
    """Every line Asterisk sent after the header block, newline removed."""
    return [e.data.removesuffix("\n") for e in entries[1:] if e.dir == "in"]


def out_lines(entries: list[Entry]) -> list[str]:
    """Every command line the recording server sent, newline removed."""
    return [e.data.removesuffix("\n") for e in entries if e.dir == "out"]


def exchanges(entries: list[Entry]) -> list[tuple[str, list[str]]]:
    """Pair each command line with the lines Asterisk sent until the next command."""
    pairs: list[tuple[str, list[str]]] = []
    for entry in entries[1:]:
        if entry.dir == "out":
            pairs.append((entry.data.removesuffix("\n"), []))
        elif entry.dir == "in":
            assert pairs, "a reply before any command"
            pairs[-1][1].append(entry.data.removesuffix("\n"))
    return pairs
