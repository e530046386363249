"""Property-based fuzzing of the FastAGI protocol layer (`AGIConnection`), bounded for CI.

A state machine feeds arbitrary byte streams, cut into arbitrary chunks, interleaved with
sends, EOFs and data after EOF, and checks after every step what the layer promises:

* the only exceptions are the documented ones: `RemoteProtocolError` from `next_event`
  (at most once per connection), `LocalProtocolError` from `send` out of turn and from
  `receive_data` after EOF;
* every buffer stays bounded: once `next_event` says `NEED_DATA`, at most one partial line
  is kept, the header block and a usage reply stay under their limits;
* events come in protocol order: at most one `AGIRequest`, first; no more final replies
  than commands sent; at most one `HangupNotice`;
* an EOF always yields exactly one `ConnectionClosed`, then `NEED_DATA` for ever;
* a header block parses the same however it is cut (the one-pass parser for a block that
  arrived whole and the line-by-line one agree);
* a twin connection fed as the engine feeds it (`AGIConnection.receive`, then `next_event`
  only while bytes are buffered) gives the same events and ends in the same state.

The streams are built from the protocol's own vocabulary (header lines, every reply shape,
``HANGUP``, usage blocks, CR/LF variants, Unicode digits and names) mixed with raw bytes and
long runs, so that the machine gets deep into every state. ``fuzz/agi_fuzz.py`` is the
coverage-guided counterpart for long runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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
from fastagi_router.agi.replies import COMMON_REPLY_LINES
from fastagi_router.errors import LocalProtocolError, RemoteProtocolError
from fastagi_router.simulator import CallSpec, header_block
from tests.hardening.twins import ERROR, assert_twins_agree, engine_events

#: Small limits in some runs, so that the bounds are reached within a few steps.
LIMITS = st.sampled_from(
    [
        {},
        {"max_header_bytes": 1024, "max_line_bytes": 128, "max_usage_lines": 4},
        {"max_header_bytes": 300, "max_line_bytes": 64, "max_usage_lines": 2},
    ]
)

NAMES = st.one_of(
    st.sampled_from(
        [
            "agi_network",
            "agi_network_script",
            "agi_callerid",
            "agi_uniqueid",
            "agi_arg_1",
            "agi_arg_2",
            "agi_arg_10",
            "agi_arg_",
            "agi_arg_x",
            "agi_arg_\u00b2",  # a Unicode digit: isdigit() is True, int() refuses it
            "agi_arg_\u0663",  # ARABIC-INDIC DIGIT THREE: int() accepts it
            "agi_arg_" + "9" * 5000,  # more digits than int() converts by default
            "x",
            "",
            " bad",
            "a b",
        ]
    ),
    st.text(max_size=10),
)
VALUES = st.one_of(
    st.sampled_from(["yes", "route?account=CL0000", "0899990988", "", " ", ":", "x: y"]),
    st.text(max_size=20),
)
ENDS = st.sampled_from(["\n", "\r\n", "", "\r", "\n\n"])
HEADER_LINE = st.builds(
    lambda n, sep, v, end: f"{n}{sep}{v}{end}",
    NAMES,
    st.sampled_from([": ", ":", " : ", "", ":  "]),
    VALUES,
    ENDS,
)
REPLY_LINE = st.builds(
    lambda code, result, tail, end: f"{code}{result}{tail}{end}",
    st.sampled_from(["200 ", "100 ", "503 ", "510 ", "511 ", "520 ", "520-", "999 ", "20", ""]),
    st.sampled_from(["result=0", "result=1", "result=-1", "result=", "result=1234", "", "x"]),
    st.sampled_from(
        ["", " (timeout)", " (a (b) c)", " endpos=3520", " (x) endpos=0", " Trying...", " ("]
    ),
    ENDS,
)
FRAGMENT = st.one_of(
    HEADER_LINE.map(lambda s: s.encode("utf-8", "surrogatepass")),
    REPLY_LINE.map(str.encode),
    st.sampled_from(
        [
            b"HANGUP\n",
            b"HANGUP\r\n",
            b"\n",
            b"\r\n",
            b"520 End of proper usage.\n",
            b"agi_network: yes\nagi_callerid: 0899990988\n\n",
            b"\xff\xfe\xed\xa0\x80\xc0\xaf",
        ]
    ),
    st.binary(max_size=40),
    st.integers(min_value=0, max_value=20_000).map(lambda n: b"y" * n),
)
STREAM = st.lists(FRAGMENT, max_size=12).map(b"".join)
CUTS = st.lists(st.integers(min_value=1, max_value=5000), max_size=8)
COMMANDS = st.sampled_from(
    [
        commands.noop(),
        commands.answer(),
        commands.get_data("agent-pass", 100, 4),
        commands.set_variable("X", 'a "b" ${SHELL(c)}'),
        *commands.set_variables([("SMARTROUTING_STATUS", "AGENT")]),
    ]
)
#: Header blocks as Asterisk writes them (and near misses), each fed as one chunk.
WHOLE_BLOCKS = [
    header_block(CallSpec()),
    header_block(CallSpec(callerid="anonymous", script="route?account=CL0001")),
    b"agi_network: yes\nagi_arg_1: a\n\n",
    b"agi_network: yes\n\nHANGUP\n",
    b"agi_network: yes\r\n\r\n",
    b"agi_network: yes\n\nagi_callerid: 0899990988\n\n",
    b"\n\n",
]
#: Enough calls of next_event to drain anything a step can feed; more means a loop.
DRAIN_LIMIT = 100_000


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the offsets ``cuts`` gives (cycled), so the same bytes arrive in any
    grouping, down to one byte at a time."""
    pieces: list[bytes] = []
    offset, i = 0, 0
    while offset < len(data):
        size = cuts[i % len(cuts)] if cuts else len(data)
        pieces.append(data[offset : offset + size])
        offset += size
        i += 1
    return pieces


class AGIConnectionMachine(RuleBasedStateMachine):
    """`AGIConnection` driven like the engine drives it, by an adversary."""

    conn: AGIConnection
    limits: dict[str, int]

    @initialize(limits=LIMITS)
    def start(self, limits: dict[str, int]) -> None:
        self.conn = AGIConnection(**limits)
        self.twin = AGIConnection(**limits)
        self.events: list[Any] = []
        self.twin_events: list[Any] = []
        self.max_line = limits.get("max_line_bytes", 16 * 1024)
        self.max_header = limits.get("max_header_bytes", 64 * 1024)
        self.max_usage = limits.get("max_usage_lines", 256)
        self.eof = False
        self.errors = 0
        self.requests = 0
        self.hangups = 0
        self.closed = 0
        self.sent = 0
        self.replies = 0

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
                return
            self.check(event, before)
            self.events.append(event)
        raise AssertionError("next_event() did not settle: a loop")

    def check(self, event: Any, before: State) -> None:
        if isinstance(event, AGIRequest):
            self.requests += 1
            assert before is State.HEADERS
        elif isinstance(event, Reply):
            assert self.requests == 1
            assert before in (State.AWAITING, State.USAGE)
            assert 100 <= event.code <= 599
            if not event.interim:
                self.replies += 1
        elif isinstance(event, HangupNotice):
            self.hangups += 1
            assert self.requests == 1
        elif isinstance(event, ConnectionClosed):
            self.closed += 1
            assert self.eof
            assert self.conn.state is State.CLOSED
        else:  # pragma: no cover - the test fails with the stray event's type
            raise AssertionError(f"undocumented event {event!r}")

    @rule(data=STREAM, cuts=CUTS)
    def feed(self, data: bytes, cuts: list[int]) -> None:
        for piece in chunks(data, cuts):
            try:
                self.conn.receive_data(piece)
            except LocalProtocolError:
                assert self.eof
                with pytest.raises(LocalProtocolError):
                    self.twin.receive(piece)
                return
            assert not self.eof, "data accepted after EOF"
            self.drain()
            self.twin_events += engine_events(self.twin, piece)

    @rule(block=st.sampled_from(WHOLE_BLOCKS))
    def feed_one_block(self, block: bytes) -> None:
        """A header block as one chunk, as Asterisk writes it: `receive`'s short cut."""
        self.feed(block, [])

    @rule(line=st.sampled_from(sorted(COMMON_REPLY_LINES)) | REPLY_LINE.map(str.encode))
    def feed_one_reply(self, line: bytes) -> None:
        """One reply line as one chunk, as Asterisk writes it: `receive`'s short cut."""
        self.feed(line, [])

    @precondition(
        lambda self: self.conn.state is State.AWAITING and not self.conn.buffered and not self.eof
    )
    @rule(line=st.sampled_from(sorted(COMMON_REPLY_LINES)))
    def answer_in_turn(self, line: bytes) -> None:
        """The reply to the command outstanding, alone in its chunk: the short cut's own
        case, which random steps reach too rarely."""
        self.feed(line, [])

    @rule(command=COMMANDS)
    def send(self, command: commands.Command) -> None:
        turn = self.conn.state is State.IDLE
        try:
            data = self.conn.send(command)
        except LocalProtocolError:
            assert not turn
            with pytest.raises(LocalProtocolError):
                self.twin.send(command)
            return
        assert self.twin.send(command) == data
        assert turn
        assert data.endswith(b"\n") and data.count(b"\n") == 1 and len(data) < 8192
        assert self.conn.state is State.AWAITING
        self.sent += 1

    @rule()
    def end_of_file(self) -> None:
        self.twin.receive_data(b"")
        while (event := self.twin.next_event()) is not NEED_DATA:
            self.twin_events.append(event)
        self.conn.receive_data(b"")
        self.eof = True
        self.drain()
        self.drain()  # a second drain yields nothing more

    @invariant()
    def twins_agree(self) -> None:
        if not hasattr(self, "conn"):
            return
        assert self.twin_events == self.events
        assert_twins_agree(self.conn, self.twin)

    @invariant()
    def bounded(self) -> None:
        if not hasattr(self, "conn"):
            return
        assert self.conn.buffered <= self.max_line
        request = self.conn.request
        if request is not None:
            size = sum(len(k) + len(v) + 3 for k, v in request.variables.items())
            assert size <= self.max_header
        assert self.errors <= 1
        assert self.requests <= 1
        assert self.hangups <= 1
        assert self.replies <= self.sent
        assert self.closed == (1 if self.eof else 0)


FUZZ = settings(
    max_examples=1500,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
AGIConnectionMachine.TestCase.settings = FUZZ
TestAGIConnectionFuzz = AGIConnectionMachine.TestCase


# -- the one-pass and the line-by-line header parsers agree ------------------------------------

HEADER_BLOCK = st.lists(st.one_of(HEADER_LINE, st.just("agi_network: yes\n")), max_size=10).map(
    lambda lines: ("".join(lines) + "\n\n").encode("utf-8", "surrogatepass")
)


def parse_headers(block: bytes, cuts: list[int], limits: dict[str, int]) -> Any:
    """The request (variables and args) parsed from ``block`` cut by ``cuts``, or the error."""
    conn = AGIConnection(**limits)
    for piece in chunks(block, cuts):
        conn.receive_data(piece)
        try:
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, AGIRequest):
                    # A block read whole answers these from its text, not from the mapping.
                    lookups = (event.callerid, event.uniqueid, event.network_script)
                    variables = dict(event.variables)
                    assert lookups == (
                        variables.get("agi_callerid", ""),
                        variables.get("agi_uniqueid", ""),
                        variables.get("agi_network_script"),
                    )
                    return variables, event.args
        except RemoteProtocolError:
            return "error"  # which limit is reported first may differ; that it fails may not
    return "incomplete"


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(block=HEADER_BLOCK, cuts=CUTS, limits=LIMITS)
def test_a_header_block_parses_the_same_however_it_is_cut(
    block: bytes, cuts: list[int], limits: dict[str, int]
) -> None:
    whole = parse_headers(block, [], limits)
    assert parse_headers(block, cuts, limits) == whole
    assert parse_headers(block, [1], limits) == whole


# -- what the fuzzing found, kept as examples ------------------------------------------------


def test_an_empty_header_block_is_a_request_not_a_crash() -> None:
    # The one-pass parser read b"\n\n" as a block with one empty line and finished the
    # request twice (an illegal transition: LocalProtocolError out of next_event).
    assert parse_headers(b"\n\n", [], {}) == ({}, ())
    assert parse_headers(b"\n\n", [1], {}) == ({}, ())


def test_a_block_that_starts_with_an_empty_line_parses_the_same_whole() -> None:
    block = b"\nagi_network: yes\n\n"
    assert parse_headers(block, [], {}) == parse_headers(block, [1], {}) == ({}, ())


def test_unicode_or_huge_argument_numbers_are_ordinary_variables() -> None:
    # "agi_arg_\u00b2".isdigit() is True but int() refuses it (ValueError out of
    # next_event); so does int() of more than 4300 digits.
    for name in ("agi_arg_\u00b2", "agi_arg_" + "9" * 5000, "agi_arg_01"):
        block = f"agi_network: yes\n{name}: x\n\n".encode()
        expected = ({"agi_network": "yes", name: "x"}, ())
        assert parse_headers(block, [], {}) == expected
        assert parse_headers(block, [7], {}) == expected


def test_arguments_without_the_first_one_are_arguments_either_way() -> None:
    # The one-pass parser took agi_arg_N as arguments only when agi_arg_1 was there.
    block = b"agi_network: yes\nagi_arg_2: b\nagi_arg_3: c\n\n"
    assert parse_headers(block, [], {}) == ({"agi_network": "yes"}, ("b", "c"))
    assert parse_headers(block, [1], {}) == ({"agi_network": "yes"}, ("b", "c"))


def test_the_line_limit_counts_bytes_in_a_block_that_came_whole() -> None:
    # 100 three-byte characters: 100 characters, 300 bytes, over a 128-byte line limit.
    block = ("agi_network: yes\nagi_calleridname: " + "\u1ec5" * 100 + "\n\n").encode()
    limits = {"max_header_bytes": 1024, "max_line_bytes": 128}
    assert parse_headers(block, [], limits) == "error"
    assert parse_headers(block, [1], limits) == "error"


def test_a_broken_reply_drops_what_follows_it() -> None:
    # Found by fuzz/agi_fuzz.py: a reply that is not one put the connection in ERROR but
    # kept the rest of the chunk buffered (up to a whole read), where every other protocol
    # error clears it: nothing more is read from a peer that broke the protocol.
    conn = AGIConnection(max_line_bytes=128)
    conn.receive_data(b"agi_network: yes\n\n")
    assert isinstance(conn.next_event(), AGIRequest)
    conn.send(commands.noop())
    conn.receive_data(b"\x00200 result=1\n" + b"200 result=0\n" * 50)
    try:
        conn.next_event()
    except RemoteProtocolError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a reply starting with NUL was accepted")
    assert conn.state is State.ERROR
    assert conn.buffered == 0
    assert conn.next_event() is NEED_DATA
