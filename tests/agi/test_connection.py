"""`AGIConnection` driven through the real recordings, and through what they imply."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from fastagi_router.agi import (
    NEED_DATA,
    AGIConnection,
    AGIRequest,
    Command,
    ConnectionClosed,
    Event,
    HangupNotice,
    Reply,
    State,
    commands,
    parse_reply,
)
from fastagi_router.agi._state import check_transition
from fastagi_router.agi.replies import COMMON_REPLY_LINES
from fastagi_router.errors import LocalProtocolError, RemoteProtocolError
from tests import transcripts

RECORDINGS = transcripts.load_all()
LOOKUP = RECORDINGS[transcripts.LOOKUP]
HEADERS = transcripts.header_block(LOOKUP)
SETVAR_USAGE = [
    "520-Invalid command syntax.  Proper usage follows:",
    "Sets a variable to the current channel.",
    "520 End of proper usage.",
]
GETDATA_USAGE = [
    "520-Invalid command syntax.  Proper usage follows:",
    "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
    "Returns the digits received from the channel at the other end.",
    "520 End of proper usage.",
]


def drain(conn: AGIConnection, limit: int = 50) -> list[Event]:
    """Every event available now; fails instead of looping if events never stop coming."""
    events: list[Event] = []
    for _ in range(limit):
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
    pytest.fail(f"next_event() still producing events after {limit} calls")


def idle_connection() -> AGIConnection:
    conn = AGIConnection()
    conn.receive_data(HEADERS)
    [request] = drain(conn)
    assert isinstance(request, AGIRequest)
    assert conn.state is State.IDLE
    return conn


def awaiting(command: Command | None = None, **limits: int) -> AGIConnection:
    conn = AGIConnection(**limits)
    conn.receive_data(HEADERS)
    drain(conn)
    conn.send(command or commands.noop())
    assert conn.state is State.AWAITING
    return conn


# -- replaying the recordings ----------------------------------------------------------------

Chunker = Callable[[bytes], Iterator[bytes]]


def as_recorded(data: bytes) -> Iterator[bytes]:
    yield data


def byte_by_byte(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def in_threes(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 3):
        yield data[i : i + 3]


def receive(conn: AGIConnection, chunk: bytes) -> list[Event]:
    """Feed ``chunk`` as the engine does: `AGIConnection.receive`, then `next_event` only
    while bytes are buffered; checks that nothing was left behind."""
    event = conn.receive(chunk)
    events = [] if event is NEED_DATA else [event, *(drain(conn) if conn.buffered else [])]
    assert conn.next_event() is NEED_DATA
    return events


def replay(
    entries: list[transcripts.Entry], feed: Chunker, *, engine: bool = False
) -> list[tuple[str, list[Event]]]:
    """Play the router's side of a recording: send each recorded command, feed what Asterisk
    sent (as the engine does when ``engine``), and return each command with the events that
    followed it (the header block's events under the name ``"<connect>"``)."""
    conn = AGIConnection()
    log: list[tuple[str, list[Event]]] = [("<connect>", [])]
    for entry in entries:
        if entry.dir == "in":
            for chunk in feed(entry.raw):
                if engine:
                    log[-1][1].extend(receive(conn, chunk))
                    continue
                conn.receive_data(chunk)
                log[-1][1].extend(drain(conn))
        elif entry.dir == "out":
            assert conn.state is State.IDLE, entry
            line = entry.data.removesuffix("\n")
            assert conn.send(commands.raw(line)) == entry.raw
            assert conn.outstanding == commands.raw(line)
            log.append((line, []))
        else:
            assert entry.data == "closing"
            conn.close()
            assert conn.state is State.CLOSED
            with pytest.raises(LocalProtocolError):
                conn.send(commands.noop())
    return log


def reply(line: str) -> Reply:
    return parse_reply(line)


def usage(lines: list[str]) -> Reply:
    return Reply(code=520, text="\n".join(lines))


EXPECTED: dict[str, list[tuple[str, list[Event]]]] = {
    transcripts.LOOKUP: [
        ("GET VARIABLE CALLERID(num)", [reply("200 result=1 (0899990988)")]),
        ("GET VARIABLE NOT_SET_VAR", [reply("200 result=0")]),
        (
            "GET FULL VARIABLE ${CALLERID(num)}-${EXTEN}",
            [reply("200 result=1 (0899990988-19001234)")],
        ),
        ('SET VARIABLE SMARTROUTING_STATUS "CUSTOMER"', [reply("200 result=1")]),
        ('SET VARIABLE SMARTROUTING_NAME "O\'Brien \\"VIP\\" client"', [reply("200 result=1")]),
        ("GET VARIABLE SMARTROUTING_NAME", [reply('200 result=1 (O\'Brien "VIP" client)')]),
        ('SET VARIABLE SMARTROUTING_EMPTY ""', [reply("200 result=1")]),
        ('SET VARIABLE SMARTROUTING_UTF8 "Nguyễn Văn A"', [reply("200 result=1")]),
        ("GET VARIABLE SMARTROUTING_UTF8", [reply("200 result=1 (Nguyễn Văn A)")]),
        (
            "EXEC MSet SMARTROUTING_DEST1=207,SMARTROUTING_DEST2=209,"
            "SMARTROUTING_DEST3=214,SMARTROUTING_DEST4=216",
            [reply("200 result=0")],
        ),
        ("GET VARIABLE SMARTROUTING_DEST3", [reply("200 result=1 (214)")]),
        ('VERBOSE "router says hello" 1', [reply("200 result=1")]),
        ("NOOP", [reply("200 result=0")]),
        ("FOO BAR", [reply("510 Invalid or unknown command")]),
        ("SET VARIABLE", [usage(SETVAR_USAGE)]),
        ("GET DATA", [usage(GETDATA_USAGE)]),
        ("ANSWER", [reply("200 result=0")]),
        ("GET DATA beep 3000 4", [reply("200 result=1234")]),
        ("GET DATA silence/1 2000 4", [reply("200 result=")]),
        ('STREAM FILE beep "0123456789*#"', [reply("200 result=0 endpos=3520")]),
        ("WAIT FOR DIGIT 100", [reply("200 result=0")]),
        ('SAY DIGITS 12 ""', [reply("200 result=0")]),
        ("CHANNEL STATUS", [reply("200 result=6")]),
        ("GET FULL VARIABLE ${EXTENSION_STATE(104@agents)}", [reply("200 result=1 ()")]),
        ("GET FULL VARIABLE ${DEVICE_STATE(Local/104@agents)}", [reply("200 result=1 ()")]),
        ('SET VARIABLE __SMARTROUTING_INHERIT "yes"', [reply("200 result=1")]),
    ],
    transcripts.HANGUP: [
        ("ANSWER", [reply("200 result=0")]),
        ("GET DATA beep 8000 4", [reply("200 result=-1")]),
        ("GET VARIABLE CALLERID(num)", [HangupNotice(), reply("200 result=1 (0899990988)")]),
        ('SET VARIABLE X "1"', [reply("200 result=1")]),
        ("NOOP", [reply("200 result=0")]),
    ],
    transcripts.CLOSE: [],
    transcripts.NO_SCRIPT: [
        ("GET VARIABLE CALLERID(num)", [reply("200 result=1 (anonymous)")]),
    ],
}


@pytest.mark.parametrize("feed", [as_recorded, in_threes, byte_by_byte])
@pytest.mark.parametrize("name", transcripts.NAMES)
def test_replay_recording(name: str, feed: Chunker) -> None:
    entries = RECORDINGS[name]
    log = replay(entries, feed)

    connect, *rest = log
    assert connect[0] == "<connect>"
    assert len(connect[1]) == 1
    assert isinstance(connect[1][0], AGIRequest)
    assert rest == EXPECTED[name]


@pytest.mark.parametrize("feed", [as_recorded, in_threes, byte_by_byte])
@pytest.mark.parametrize("name", transcripts.NAMES)
def test_replay_recording_as_the_engine_reads_it(name: str, feed: Chunker) -> None:
    assert replay(RECORDINGS[name], feed, engine=True) == replay(RECORDINGS[name], feed)


def test_a_whole_block_and_a_common_reply_skip_the_buffer() -> None:
    conn = AGIConnection()
    request = conn.receive(HEADERS)
    assert isinstance(request, AGIRequest)
    assert request.callerid == "0899990988"
    assert (conn.state, conn.buffered) == (State.IDLE, 0)
    conn.send(commands.noop())
    for line in (b"200 result=0\n", b"200 result=1\n", b"200 result=-1\n"):
        reply = conn.receive(line)
        assert reply is COMMON_REPLY_LINES[line]  # parsed once, handed out again
        assert reply == parse_reply(line.decode().rstrip("\n"))
        assert (conn.state, conn.outstanding, conn.buffered) == (State.IDLE, None, 0)
        conn.send(commands.noop())


@pytest.mark.parametrize(
    "chunk",
    [
        b"200 result=0\r\n",  # CR: the general path strips it
        b"200 result=1\nHANGUP\n",  # more than one line
        b"HANGUP\n",
        b"200 result=1 (0899990988)\n",  # not a common reply
    ],
)
def test_other_replies_take_the_general_path_to_the_same_events(chunk: bytes) -> None:
    general, engine = awaiting(), awaiting()
    general.receive_data(chunk)
    assert receive(engine, chunk) == drain(general)
    assert (engine.state, engine.outstanding) == (general.state, general.outstanding)


def test_a_reply_split_in_two_is_read_once_whole() -> None:
    conn = awaiting()
    assert conn.receive(b"200 res") is NEED_DATA
    assert conn.buffered == 7
    assert receive(conn, b"ult=1\n") == [parse_reply("200 result=1")]
    assert conn.state is State.IDLE


@pytest.mark.parametrize(
    "chunk",
    [
        HEADERS + b"HANGUP\n",  # more after the block
        HEADERS.replace(b"\n", b"\r\n"),
        b"\n\n",
        b"\nagi_network: yes\n\n",
        b"not a header\n\n",
        b"agi_network: yes\n\nagi_callerid: 0899990988\n\n",  # a block, then a stray line
        HEADERS.replace(b"agi_callerid", b"agi callerid"),
    ],
)
def test_other_header_chunks_take_the_general_path_to_the_same_events(chunk: bytes) -> None:
    general, engine = AGIConnection(), AGIConnection()
    general.receive_data(chunk)
    try:
        expected: object = drain(general)
    except RemoteProtocolError:
        expected = "error"
    try:
        got: object = receive(engine, chunk)
    except RemoteProtocolError:
        got = "error"
    assert got == expected
    assert (engine.state, engine.buffered) == (general.state, general.buffered)


def test_receive_after_eof_is_a_local_error() -> None:
    conn = awaiting()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive(b"200 result=0\n")


def test_expected_commands_are_the_recorded_ones() -> None:
    for name, entries in RECORDINGS.items():
        assert [line for line, _ in EXPECTED[name]] == transcripts.out_lines(entries), name


def test_multiline_usage_is_one_reply_holding_every_line() -> None:
    conn = awaiting(commands.raw("GET DATA"))
    events: list[Event] = []
    for line in GETDATA_USAGE:
        assert events == []
        conn.receive_data(line.encode() + b"\n")
        events += drain(conn)
    [event] = events
    assert isinstance(event, Reply)
    assert event.code == 520
    assert event.result is None
    for line in GETDATA_USAGE:
        assert line in event.text
    assert event.text.splitlines() == GETDATA_USAGE
    assert conn.state is State.IDLE
    assert conn.outstanding is None


def test_usage_block_split_at_every_byte_boundary() -> None:
    block = "".join(line + "\n" for line in SETVAR_USAGE).encode()
    for cut in range(1, len(block)):
        conn = awaiting(commands.raw("SET VARIABLE"))
        conn.receive_data(block[:cut])
        events = drain(conn)
        if cut < len(block) - 1:
            assert conn.state in (State.AWAITING, State.USAGE), cut
        conn.receive_data(block[cut:])
        events += drain(conn)
        assert events == [usage(SETVAR_USAGE)], cut


def test_sending_during_a_usage_block_is_refused() -> None:
    conn = awaiting(commands.raw("SET VARIABLE"))
    conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n")
    assert drain(conn) == []
    assert conn.state is State.USAGE
    with pytest.raises(LocalProtocolError):
        conn.send(commands.noop())
    conn.receive_data(b"Sets a variable to the current channel.\n520 End of proper usage.\n")
    assert drain(conn) == [usage(SETVAR_USAGE)]


def test_single_line_520_is_a_reply_on_its_own() -> None:
    conn = awaiting(commands.raw("SET VARIABLE"))
    conn.receive_data(b"520 Invalid command syntax.  Proper usage not available.\n")
    [event] = drain(conn)
    assert event == Reply(code=520, text="520 Invalid command syntax.  Proper usage not available.")
    assert conn.state is State.IDLE


@pytest.mark.parametrize("max_usage_lines", [4, 5, 256])
def test_usage_block_within_the_line_limit(max_usage_lines: int) -> None:
    conn = awaiting(commands.raw("GET DATA"), max_usage_lines=max_usage_lines)
    conn.receive_data("".join(line + "\n" for line in GETDATA_USAGE).encode())
    assert drain(conn) == [usage(GETDATA_USAGE)]


@pytest.mark.parametrize("max_usage_lines", [1, 2, 3])
def test_usage_block_over_the_line_limit(max_usage_lines: int) -> None:
    conn = awaiting(commands.raw("GET DATA"), max_usage_lines=max_usage_lines)
    conn.receive_data("".join(line + "\n" for line in GETDATA_USAGE).encode())
    with pytest.raises(RemoteProtocolError, match="usage reply longer"):
        drain(conn)
    assert conn.state is State.ERROR


def test_endless_usage_block_is_cut_off() -> None:
    conn = awaiting(commands.raw("GET DATA"), max_usage_lines=50)
    conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n")
    with pytest.raises(RemoteProtocolError, match="usage reply longer"):
        for _ in range(1000):
            conn.receive_data(b"more usage\n")
            assert drain(conn) == []
    assert conn.state is State.ERROR


# -- HANGUP ------------------------------------------------------------------------------------


def test_hangup_before_the_reply_comes_first_and_the_reply_follows() -> None:
    conn = awaiting(commands.get_variable("CALLERID(num)"))
    conn.receive_data(b"HANGUP\n")
    assert drain(conn) == [HangupNotice()]
    assert conn.hung_up
    assert conn.state is State.AWAITING  # the turn has not changed
    conn.receive_data(b"200 result=1 (0899990988)\n")
    assert drain(conn) == [reply("200 result=1 (0899990988)")]
    assert conn.state is State.IDLE


def test_a_second_hangup_is_ignored() -> None:
    conn = awaiting()
    conn.receive_data(b"HANGUP\nHANGUP\n200 result=0\nHANGUP\n")
    assert drain(conn) == [HangupNotice(), reply("200 result=0")]
    conn.send(commands.noop())
    conn.receive_data(b"HANGUP\r\n200 result=0\n")
    assert drain(conn) == [reply("200 result=0")]


def test_hangup_while_the_router_is_thinking() -> None:
    conn = idle_connection()
    conn.receive_data(b"HANGUP\n")
    assert drain(conn) == [HangupNotice()]
    assert conn.state is State.IDLE
    conn.send(commands.set_variable("X", "1"))
    conn.receive_data(b"200 result=1\n")
    assert drain(conn) == [reply("200 result=1")]


def test_hangup_inside_a_usage_block() -> None:
    conn = awaiting(commands.raw("SET VARIABLE"))
    lines = [SETVAR_USAGE[0], "HANGUP", *SETVAR_USAGE[1:]]
    conn.receive_data("".join(line + "\n" for line in lines).encode())
    assert drain(conn) == [HangupNotice(), usage(SETVAR_USAGE)]


def test_hangup_during_the_header_block_is_not_a_header() -> None:
    conn = AGIConnection()
    conn.receive_data(b"agi_network: yes\nHANGUP\n")
    with pytest.raises(RemoteProtocolError):
        drain(conn)


# -- turns ---------------------------------------------------------------------------------------


def test_sending_while_a_command_is_outstanding_is_refused() -> None:
    """This is what keeps a prompt from being interrupted (and its reply from being lost)."""
    prompt = commands.get_data("beep", 3000, 4)
    conn = awaiting(prompt)
    assert conn.commands_sent == 1
    for attempt in (commands.noop(), commands.set_variable("X", "1"), prompt):
        with pytest.raises(LocalProtocolError, match="awaiting"):
            conn.send(attempt)
    assert conn.state is State.AWAITING
    assert conn.outstanding is prompt
    assert conn.commands_sent == 1
    conn.receive_data(b"200 result=1234\n")
    assert drain(conn) == [reply("200 result=1234")]
    assert conn.outstanding is None
    assert conn.send(commands.noop()) == b"NOOP\n"
    assert conn.commands_sent == 2


@pytest.mark.parametrize("received", [b"", b"agi_network: yes\n", HEADERS[:-1]])
def test_sending_before_the_header_block_is_in_is_refused(received: bytes) -> None:
    conn = AGIConnection()
    if received:
        conn.receive_data(received)
    assert drain(conn) == []
    with pytest.raises(LocalProtocolError, match="headers"):
        conn.send(commands.noop())
    assert conn.state is State.HEADERS
    assert conn.commands_sent == 0


def test_sending_after_an_error_is_refused() -> None:
    conn = idle_connection()
    conn.receive_data(b"200 result=0\n")
    with pytest.raises(RemoteProtocolError):
        drain(conn)
    with pytest.raises(LocalProtocolError, match="error"):
        conn.send(commands.noop())


@pytest.mark.parametrize(
    "line", [b"200 result=0", b"510 Invalid or unknown command", b"520 End of proper usage."]
)
def test_an_unsolicited_reply_is_refused(line: bytes) -> None:
    conn = idle_connection()
    conn.receive_data(line + b"\n")
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()
    assert conn.state is State.ERROR
    assert conn.next_event() is NEED_DATA


def test_a_reply_that_is_not_a_reply_is_refused() -> None:
    conn = awaiting()
    conn.receive_data(b"hello there\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR
    conn.receive_data(b"200 result=0\n")
    assert conn.next_event() is NEED_DATA


def test_interim_100_keeps_the_command_outstanding() -> None:
    gosub = commands.raw("GOSUB sub-check s 1")
    conn = awaiting(gosub)
    conn.receive_data(b"100 result=0 Trying...\n")
    [interim] = drain(conn)
    assert isinstance(interim, Reply)
    assert interim.interim
    assert conn.state is State.AWAITING
    assert conn.outstanding is gosub
    with pytest.raises(LocalProtocolError):
        conn.send(commands.noop())
    conn.receive_data(b"200 result=0 Gosub complete\n")
    [final] = drain(conn)
    assert isinstance(final, Reply)
    assert not final.interim
    assert final.result == "0"
    assert conn.state is State.IDLE
    assert conn.outstanding is None


def test_bytes_that_arrive_early_wait_for_their_turn() -> None:
    """Both replies in one read: the second is only parsed once its command is sent."""
    conn = awaiting(commands.noop())
    conn.receive_data(b"200 result=0\n200 result=1 (x)\n")
    assert conn.next_event() == reply("200 result=0")
    assert conn.state is State.IDLE
    conn.send(commands.get_variable("X"))
    assert drain(conn) == [reply("200 result=1 (x)")]


# -- the peer closing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pending", "unparsed"), [(b"", 0), (b"200 res", 7), (b"HANGUP\n200 result", 10)]
)
def test_eof_while_awaiting(pending: bytes, unparsed: int) -> None:
    conn = awaiting()
    conn.receive_data(pending)
    conn.receive_data(b"")
    events = drain(conn)
    assert events[-1] == ConnectionClosed(state="awaiting", unparsed=unparsed)
    assert [conn.next_event() for _ in range(3)] == [NEED_DATA] * 3
    assert conn.state is State.CLOSED


def test_eof_inside_a_usage_block() -> None:
    conn = awaiting(commands.raw("SET VARIABLE"))
    conn.receive_data(b"520-Invalid command syntax.  Proper usage follows:\n")
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(state="usage", unparsed=0)]


def test_eof_while_idle_like_recording_03() -> None:
    conn = idle_connection()
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(state="idle", unparsed=0)]
    with pytest.raises(LocalProtocolError):
        conn.send(commands.noop())


def test_replies_before_the_eof_are_still_delivered() -> None:
    conn = awaiting()
    conn.receive_data(b"200 result=0\n")
    conn.receive_data(b"")
    assert drain(conn) == [reply("200 result=0"), ConnectionClosed(state="idle", unparsed=0)]


def test_data_after_eof_is_a_local_error() -> None:
    conn = idle_connection()
    conn.receive_data(b"")
    conn.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"HANGUP\n")


def test_after_our_close_nothing_is_read_or_sent() -> None:
    conn = awaiting()
    conn.close()
    conn.receive_data(b"200 result=0\nHANGUP\n")
    assert drain(conn) == []
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(state="closed", unparsed=0)]
    with pytest.raises(LocalProtocolError):
        conn.send(commands.noop())


# -- the state table -----------------------------------------------------------------------------

ALLOWED = {
    State.HEADERS: {State.IDLE, State.CLOSED, State.ERROR},
    State.IDLE: {State.AWAITING, State.CLOSED, State.ERROR},
    State.AWAITING: {State.IDLE, State.USAGE, State.CLOSED, State.ERROR},
    State.USAGE: {State.IDLE, State.CLOSED, State.ERROR},
    State.CLOSED: {State.CLOSED},
    State.ERROR: {State.ERROR, State.CLOSED},
}
PAIRS = list(itertools.product(State, State))


@pytest.mark.parametrize(
    ("current", "new"),
    [p for p in PAIRS if p[1] in ALLOWED[p[0]]],
    ids=lambda s: s.value,
)
def test_legal_transition(current: State, new: State) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [p for p in PAIRS if p[1] not in ALLOWED[p[0]]],
    ids=lambda s: s.value,
)
def test_illegal_transition(current: State, new: State) -> None:
    with pytest.raises(LocalProtocolError, match=f"{current.value} -> {new.value}"):
        check_transition(current, new)


def test_the_table_names_every_state() -> None:
    assert set(ALLOWED) == set(State)
    assert len([p for p in PAIRS if p[1] not in ALLOWED[p[0]]]) == 20
