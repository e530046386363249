"""Coverage-guided fuzzing of the FastAGI protocol layer with atheris (libFuzzer).

The long-running counterpart of tests/hardening/test_agi_fuzz.py, which runs a bounded
property-based fuzz in CI. Each input drives one `AGIConnection` the way the engine does:

    byte 0            which limits (defaults, or small ones that are reached quickly)
    then, repeatedly  an operation byte, modulo 3: 0 feeds the next N bytes (N in the two
                      bytes after it, little-endian), 1 sends the command the next byte
                      picks, 2 signals EOF

and after every operation checks what the layer promises: only `RemoteProtocolError` from
`next_event` (at most once), `LocalProtocolError` from `send` out of turn or from
`receive_data` after EOF; at most one partial line buffered once `next_event` says
`NEED_DATA`; at most one `AGIRequest`, no more final replies than commands sent; exactly
one `ConnectionClosed` after EOF. A twin connection is fed the same chunks as the engine
feeds them (`AGIConnection.receive`, then `next_event` only while bytes are buffered) and
must give the same events and end in the same state after every operation. It also parses
every input's bytes as a header block whole and one byte at a time and requires the same
result.

Run it (atheris is not a dependency of the package: ``pip install atheris``)::

    mkdir -p /tmp/agi-corpus
    python fuzz/agi_fuzz.py --seeds /tmp/agi-corpus     # the recordings, as starting inputs
    python fuzz/agi_fuzz.py /tmp/agi-corpus -max_total_time=900 -print_final_stats=1

A crash stops the run and writes the input to ``crash-<hash>``; replay it with
``python fuzz/agi_fuzz.py crash-<hash>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import atheris

# The twin checks are shared with the property fuzz in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["fastagi_router"]):
    from fastagi_router.agi import (
        NEED_DATA,
        AGIConnection,
        AGIRequest,
        ConnectionClosed,
        HangupNotice,
        Reply,
        State,
        commands,
    )
    from fastagi_router.errors import LocalProtocolError, RemoteProtocolError

from tests.hardening.twins import ERROR, assert_twins_agree, engine_events

LIMITS: list[dict[str, int]] = [
    {},
    {"max_header_bytes": 1024, "max_line_bytes": 128, "max_usage_lines": 4},
    {"max_header_bytes": 300, "max_line_bytes": 64, "max_usage_lines": 2},
]
COMMANDS = [
    commands.noop(),
    commands.answer(),
    commands.get_data("agent-pass", 100, 4),
    commands.set_variable("X", 'a "b" ${SHELL(c)}'),
    *commands.set_variables([("SMARTROUTING_STATUS", "AGENT")]),
]
OP_FEED, OP_SEND, OP_EOF = 0, 1, 2
DRAIN_LIMIT = 1_000_000
RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "asterisk-transcripts"


class Run:
    """One connection and the counts its invariants are checked against."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.conn = AGIConnection(**limits)
        self.twin = AGIConnection(**limits)
        self.events: list[Any] = []
        self.twin_events: list[Any] = []
        self.max_line = limits.get("max_line_bytes", 16 * 1024)
        self.eof = False
        self.errors = self.requests = self.hangups = self.closed = self.sent = self.replies = 0

    def drain(self) -> None:
        for _ in range(DRAIN_LIMIT):
            before = self.conn.state
            try:
                event = self.conn.next_event()
            except RemoteProtocolError:
                self.errors += 1
                self.events.append(ERROR)
                assert self.conn.state is State.ERROR
                continue
            if event is NEED_DATA:
                self.check()
                return
            self.count(event, before)
            self.events.append(event)
        raise AssertionError("next_event() did not settle")

    def twins_agree(self) -> None:
        assert self.twin_events == self.events
        assert_twins_agree(self.conn, self.twin)

    def count(self, event: Any, before: State) -> None:
        if isinstance(event, AGIRequest):
            assert before is State.HEADERS
            self.requests += 1
        elif isinstance(event, Reply):
            assert before in (State.AWAITING, State.USAGE)
            self.replies += 0 if event.interim else 1
        elif isinstance(event, HangupNotice):
            self.hangups += 1
        elif isinstance(event, ConnectionClosed):
            assert self.eof
            self.closed += 1
        else:
            raise AssertionError(f"undocumented event {event!r}")

    def check(self) -> None:
        assert self.conn.buffered <= self.max_line, self.conn.buffered
        assert self.errors <= 1
        assert self.requests <= 1
        assert self.hangups <= 1
        assert self.replies <= self.sent
        assert self.closed == (1 if self.eof else 0)

    def feed(self, data: bytes) -> None:
        if not data:
            return  # b"" is how an EOF is said: that is `end`
        try:
            self.conn.receive_data(data)
        except LocalProtocolError:
            assert self.eof
            try:
                self.twin.receive(data)
            except LocalProtocolError:
                return
            raise AssertionError("the twin accepted data after EOF") from None
        assert not self.eof, "data accepted after EOF"
        self.drain()
        self.twin_events += engine_events(self.twin, data, DRAIN_LIMIT)
        self.twins_agree()

    def send(self, index: int) -> None:
        turn = self.conn.state is State.IDLE
        command = COMMANDS[index % len(COMMANDS)]
        try:
            out = self.conn.send(command)
        except LocalProtocolError:
            assert not turn
            assert self.twin.state is self.conn.state  # so the twin refuses it too
            return
        assert turn and out.endswith(b"\n") and out.count(b"\n") == 1
        assert self.twin.send(command) == out
        self.sent += 1

    def end(self) -> None:
        self.conn.receive_data(b"")
        self.eof = True
        self.drain()
        self.drain()
        self.twin.receive_data(b"")
        while (event := self.twin.next_event()) is not NEED_DATA:
            self.twin_events.append(event)
        self.twins_agree()


def header_result(data: bytes, limits: dict[str, int], one_by_one: bool) -> Any:
    """The request parsed from ``data`` (whole, or one byte at a time), "error", or None."""
    conn = AGIConnection(**limits)
    pieces = [data[i : i + 1] for i in range(len(data))] if one_by_one else [data]
    for piece in pieces:
        conn.receive_data(piece)
        try:
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, AGIRequest):
                    return dict(event.variables), event.args
        except RemoteProtocolError:
            return "error"
    return None


def test_one_input(data: bytes) -> None:
    """Run one input (the format is in the module docstring); raise on a broken promise."""
    limits = LIMITS[data[0] % len(LIMITS)] if data else {}
    fed = bytearray()
    run = Run(limits)
    i = 1
    while i < len(data):
        op = data[i] % 3
        if op == OP_FEED:
            size = int.from_bytes(data[i + 1 : i + 3], "little")
            chunk = data[i + 3 : i + 3 + size]
            i += 3 + size
            fed += chunk
            run.feed(chunk)
        elif op == OP_SEND:
            run.send(data[i + 1] if i + 1 < len(data) else 0)
            i += 2
        else:
            run.end()
            i += 1
    if len(fed) <= 4096:  # one byte at a time costs one parse per byte
        whole = header_result(bytes(fed), limits, one_by_one=False)
        assert header_result(bytes(fed), limits, one_by_one=True) == whole


def _encode(stream: list[tuple[int, bytes]]) -> bytes:
    """An input in the format above: limits 0, then (feed, 2-byte length, bytes) or send."""
    out = bytearray([0])
    for op, payload in stream:
        out.append(op)
        if op == OP_FEED:
            out += len(payload).to_bytes(2, "little") + payload
        elif op == OP_SEND:
            out += payload[:1] or b"\x00"
    return bytes(out)


def write_seeds(directory: Path) -> int:
    """Write one input per recording (what Asterisk sent, a NOOP sent before each reply)."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(RECORDINGS.glob("*.jsonl")):
        stream: list[tuple[int, bytes]] = []
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry["dir"] == "in":
                stream.append((OP_FEED, entry["data"].encode()))
            elif entry["dir"] == "out":
                stream.append((OP_SEND, b"\x00"))
        stream.append((OP_EOF, b""))
        (directory / f"seed-{path.stem}").write_bytes(_encode(stream))
        count += 1
    return count


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        print(f"wrote {write_seeds(Path(sys.argv[2]))} seed inputs to {sys.argv[2]}")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
