"""The header block: what Asterisk sends first, parsed into one `AGIRequest`."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.agi import (
    NEED_DATA,
    AGIConnection,
    AGIRequest,
    ConnectionClosed,
    Event,
    State,
)
from fastagi_router.errors import RemoteProtocolError
from tests import transcripts

RECORDINGS = transcripts.load_all()
LOOKUP_BLOCK = transcripts.header_block(RECORDINGS[transcripts.LOOKUP])
NO_SCRIPT_BLOCK = transcripts.header_block(RECORDINGS[transcripts.NO_SCRIPT])


def drain(conn: AGIConnection, limit: int = 50) -> list[Event]:
    """Every event available now; fails instead of looping if events never stop coming."""
    events: list[Event] = []
    for _ in range(limit):
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
    pytest.fail(f"next_event() still producing events after {limit} calls: {events[-3:]}")


def parse(block: bytes, **limits: int) -> AGIRequest:
    conn = AGIConnection(**limits)
    conn.receive_data(block)
    events = drain(conn)
    assert len(events) == 1, events
    request = events[0]
    assert isinstance(request, AGIRequest)
    assert conn.request is request
    assert conn.state is State.IDLE
    return request


# -- what each recording's header block says ------------------------------------------------

EXPECTED: dict[str, dict[str, Any]] = {
    transcripts.LOOKUP: {
        "script": "route",
        "network_script": "route?account=CL0000",
        "query": {"account": "CL0000"},
        "args": ("arg1", "arg two"),
        "callerid": "0899990988",
        "uniqueid": "1795653722.1",
        "calleridname": "Test Caller",
        "channel": "Local/19001234@from-pstn-00000000;2",
        "request": "agi://127.0.0.1:4573/route?account=CL0000",
        "priority": "2",
    },
    transcripts.HANGUP: {
        "script": "hangup",
        "network_script": "hangup?account=CL0000",
        "query": {"account": "CL0000"},
        "args": ("arg1", "arg two"),
        "callerid": "0899990988",
        "uniqueid": "1795653763.3",
        "calleridname": "Test Caller",
        "channel": "Local/19001234@from-pstn-00000001;2",
        "request": "agi://127.0.0.1:4599/hangup?account=CL0000",
        "priority": "3",
    },
    transcripts.CLOSE: {
        "script": "close",
        "network_script": "close?account=CL0000",
        "query": {"account": "CL0000"},
        "args": ("arg1", "arg two"),
        "callerid": "0899990988",
        "uniqueid": "1795653841.9",
        "calleridname": "Test Caller",
        "channel": "Local/19001234@from-pstn-00000004;2",
        "request": "agi://127.0.0.1:4599/close?account=CL0000",
        "priority": "3",
    },
    transcripts.NO_SCRIPT: {
        "script": None,
        "network_script": None,
        "query": {},
        "args": (),
        "callerid": "anonymous",
        "uniqueid": "1795653847.11",
        "calleridname": "unknown",
        "channel": "Local/19001234@from-pstn-noscript-00000005;2",
        "request": "agi://127.0.0.1:4599",
        "priority": "1",
    },
}


@pytest.mark.parametrize("name", transcripts.NAMES)
def test_recorded_header_block(name: str) -> None:
    expected = EXPECTED[name]
    request = parse(transcripts.header_block(RECORDINGS[name]))

    assert request.script == expected["script"]
    assert request.network_script == expected["network_script"]
    assert dict(request.query) == expected["query"]
    assert request.args == expected["args"]
    assert request.callerid == expected["callerid"]
    assert request.uniqueid == expected["uniqueid"]
    assert request.get("calleridname") == expected["calleridname"]
    assert request.get("agi_channel") == expected["channel"]
    assert request.get("request") == expected["request"]
    assert request.get("priority") == expected["priority"]
    assert request.get("network") == "yes"
    assert request.get("version") == "23.4.1"
    assert request.get("accountcode", default="absent") == ""
    assert not any(key.startswith("agi_arg_") for key in request.variables)


def test_every_recorded_line_is_a_variable() -> None:
    request = parse(LOOKUP_BLOCK)
    lines = LOOKUP_BLOCK.decode().splitlines()[:-1]  # without the blank line that ends it
    assert len(request.variables) + len(request.args) == len(lines)
    for line in lines:
        name, _, value = line.partition(": ")
        if name.startswith("agi_arg_"):
            assert request.args[int(name[8:]) - 1] == value
        else:
            assert request.variables[name] == value


def test_no_network_script_line_means_no_script() -> None:
    assert b"agi_network_script" not in NO_SCRIPT_BLOCK
    request = parse(NO_SCRIPT_BLOCK)
    assert "agi_network_script" not in request.variables
    assert request.script is None
    assert dict(request.query) == {}
    assert dict(request.parameters()) == {}


def test_empty_value_keeps_the_variable() -> None:
    assert b"agi_accountcode: \n" in LOOKUP_BLOCK
    request = parse(LOOKUP_BLOCK)
    assert "agi_accountcode" in request.variables
    assert request.variables["agi_accountcode"] == ""


def test_value_without_the_space_after_the_colon() -> None:
    request = parse(b"agi_network: yes\nagi_accountcode:\nagi_callerid:123\n\n")
    assert request.variables["agi_accountcode"] == ""
    assert request.callerid == "123"


def test_only_one_space_after_the_colon_is_dropped() -> None:
    request = parse(b"agi_calleridname:  Bob: the builder \n\n")
    assert request.get("calleridname") == " Bob: the builder "


def test_crlf_line_ends_give_the_same_request() -> None:
    crlf = LOOKUP_BLOCK.replace(b"\n", b"\r\n")
    assert parse(crlf) == parse(LOOKUP_BLOCK)
    assert not any(value.endswith("\r") for value in parse(crlf).variables.values())


# -- scripts, query strings and arguments ----------------------------------------------------


@pytest.mark.parametrize(
    ("network_script", "script"),
    [
        ("route", "route"),
        ("route?account=CL0000", "route"),
        ("/route/?account=CL0000", "route"),
        ("lookup/v2?x=1", "lookup/v2"),
        ("?account=CL0000", ""),
    ],
)
def test_script_is_the_path_without_query_or_slashes(network_script: str, script: str) -> None:
    request = parse(f"agi_network: yes\nagi_network_script: {network_script}\n\n".encode())
    assert request.network_script == network_script
    assert request.script == script


def test_agi_args_are_ordered_by_number_not_by_arrival() -> None:
    numbers = [10, 2, 1, 12, 3, 11, 9, 4, 8, 5, 7, 6]
    block = "agi_network: yes\n" + "".join(f"agi_arg_{n}: a{n}\n" for n in numbers) + "\n"
    request = parse(block.encode())
    assert request.args == tuple(f"a{n}" for n in range(1, 13))


def test_arguments_anywhere_in_the_block_and_repeated_read_alike_whole_or_in_pieces() -> None:
    # The one-pass parser finds arguments from the first "agi_arg_" in the text on; one
    # that is mentioned earlier in a value, or a repeated one (the last wins), must not
    # change what it finds.
    block = (
        b"agi_request: agi://h/route?agi_arg_9: no\n"
        b"agi_arg_2: b\n"
        b"agi_callerid: 0899990988\n"
        b"agi_arg_1: first\n"
        b"agi_arg_1: again\n"
        b"agi_arg_01: a variable\n\n"
    )
    whole = parse(block)
    assert whole.args == ("again", "b")
    assert dict(whole.variables) == {
        "agi_request": "agi://h/route?agi_arg_9: no",
        "agi_callerid": "0899990988",
        "agi_arg_01": "a variable",
    }
    conn = AGIConnection()
    events: list[Event] = []
    for byte in block:
        conn.receive_data(bytes([byte]))
        events += drain(conn)
    assert events == [whole]


def test_a_request_read_whole_is_the_value_read_line_by_line() -> None:
    whole = parse(LOOKUP_BLOCK)
    conn = AGIConnection()
    conn.receive_data(LOOKUP_BLOCK[:40])  # a first piece: the line-by-line path
    assert drain(conn) == []
    conn.receive_data(LOOKUP_BLOCK[40:])
    (pieces,) = drain(conn)
    assert pieces._text is None and whole._text is not None  # one of each kind
    assert pieces == whole and repr(pieces) == repr(whole)
    assert (whole.callerid, whole.uniqueid, whole.network_script) == (
        pieces.callerid,
        pieces.uniqueid,
        pieces.network_script,
    )
    with pytest.raises(AttributeError):
        whole.args = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(whole)
    for request in (whole, pieces):
        for again in (copy.copy(request), pickle.loads(pickle.dumps(request))):
            assert again == request and again.callerid == request.callerid


def test_the_last_of_a_repeated_variable_wins_either_way() -> None:
    block = b"agi_callerid: 111\nagi_network_script: a\nagi_callerid: 222\nagi_uniqueid: u\n\n"
    whole = parse(block)
    assert whole.callerid == whole.variables["agi_callerid"] == "222"
    assert whole.network_script == "a" and whole.uniqueid == "u"
    assert parse(b"agi_network: yes\n\n").network_script is None
    conn = AGIConnection()
    for byte in block:
        conn.receive_data(bytes([byte]))
        events = drain(conn)
    assert events == [whole] and events[0].callerid == "222"


def test_an_agi_arg_without_a_number_is_an_ordinary_variable() -> None:
    request = parse(b"agi_arg_x: not an arg\nagi_arg_1: first\n\n")
    assert request.args == ("first",)
    assert request.variables["agi_arg_x"] == "not an arg"


def test_parameters_merge_key_value_args_with_the_query_string() -> None:
    block = (
        "agi_network: yes\n"
        "agi_network_script: route?account=CL0000&mode=dtmf&mode=ignored\n"
        "agi_arg_1: lang=vi\n"
        "agi_arg_2: account=FROM_ARG\n"
        "agi_arg_3: plain\n"
        "agi_arg_4: two words=no\n"
        "agi_arg_5: lang=second\n"
        "agi_arg_6: note=a=b\n"
        "\n"
    )
    request = parse(block.encode())
    assert dict(request.query) == {"account": "CL0000", "mode": "dtmf"}
    assert dict(request.parameters()) == {
        "lang": "vi",  # the first of a repeated argument wins
        "account": "CL0000",  # the query string wins over an argument
        "mode": "dtmf",
        "note": "a=b",
    }


def test_parameters_of_the_recorded_call() -> None:
    request = parse(LOOKUP_BLOCK)
    assert dict(request.parameters()) == {"account": "CL0000"}


# -- bytes that are not UTF-8, and bytes that arrive in pieces -------------------------------


def test_invalid_utf8_becomes_replacement_characters() -> None:
    block = b"agi_calleridname: \xff\xfeJos\xc3\xa9 \xe1\xbb\n\n"
    request = parse(block)
    assert request.get("calleridname") == "\ufffd\ufffdJosé \ufffd"


UTF8_BLOCK = LOOKUP_BLOCK.replace(b"Test Caller", "Nguyễn Văn A".encode())


@pytest.mark.parametrize("block", [LOOKUP_BLOCK, NO_SCRIPT_BLOCK, UTF8_BLOCK])
def test_split_at_every_byte_boundary(block: bytes) -> None:
    whole = parse(block)
    for cut in range(1, len(block)):
        conn = AGIConnection()
        conn.receive_data(block[:cut])
        first = drain(conn)
        conn.receive_data(block[cut:])
        events = first + drain(conn)
        assert events == [whole], cut


def test_one_byte_at_a_time() -> None:
    conn = AGIConnection()
    events: list[Event] = []
    for byte in UTF8_BLOCK:
        assert conn.state is State.HEADERS
        conn.receive_data(bytes([byte]))
        events += drain(conn)
    assert events == [parse(UTF8_BLOCK)]
    assert parse(UTF8_BLOCK).get("calleridname") == "Nguyễn Văn A"


# -- limits -----------------------------------------------------------------------------------


def test_header_block_at_the_size_limit_is_accepted() -> None:
    request = parse(LOOKUP_BLOCK, max_header_bytes=len(LOOKUP_BLOCK))
    assert request.callerid == "0899990988"


def test_header_block_over_the_size_limit_is_refused() -> None:
    conn = AGIConnection(max_header_bytes=len(LOOKUP_BLOCK) - 1)
    conn.receive_data(LOOKUP_BLOCK)
    with pytest.raises(RemoteProtocolError, match="header block"):
        drain(conn)
    assert conn.state is State.ERROR
    assert conn.request is None


def test_endless_header_lines_are_cut_off() -> None:
    conn = AGIConnection(max_header_bytes=1024)
    with pytest.raises(RemoteProtocolError, match="header block"):
        for n in range(1000):
            conn.receive_data(f"agi_x{n}: {'y' * 20}\n".encode())
            assert drain(conn) == []
    assert conn.state is State.ERROR


@pytest.mark.parametrize("newline", [b"\n", b""])
def test_line_at_the_length_limit_is_accepted(newline: bytes) -> None:
    line = b"agi_x: " + b"y" * (100 - 7)
    assert len(line) == 100
    conn = AGIConnection(max_line_bytes=100)
    conn.receive_data(line + newline)
    assert drain(conn) == []
    assert conn.state is State.HEADERS


@pytest.mark.parametrize("newline", [b"\n", b""])
def test_line_over_the_length_limit_is_refused(newline: bytes) -> None:
    conn = AGIConnection(max_line_bytes=100)
    conn.receive_data(b"agi_network: yes\n")
    conn.receive_data(b"agi_x: " + b"y" * (101 - 7) + newline)
    with pytest.raises(RemoteProtocolError, match="line longer"):
        drain(conn)
    assert conn.state is State.ERROR


def test_long_line_arriving_in_pieces_is_refused_before_it_ends() -> None:
    conn = AGIConnection(max_line_bytes=100)
    conn.receive_data(b"agi_x: ")
    with pytest.raises(RemoteProtocolError, match="line longer"):
        for _ in range(100):
            conn.receive_data(b"y" * 10)
            assert drain(conn) == []
    assert conn.state is State.ERROR


@pytest.mark.parametrize(
    "line",
    [b"agi_network yes", b"HANGUP", b": no name", b"agi network: yes", b"200 result=0"],
)
def test_a_line_that_is_not_a_header_is_refused(line: bytes) -> None:
    conn = AGIConnection()
    conn.receive_data(b"agi_network: yes\n" + line + b"\n\n")
    with pytest.raises(RemoteProtocolError, match="not a header line"):
        drain(conn)
    assert conn.state is State.ERROR


def test_after_an_error_only_the_close_is_reported() -> None:
    conn = AGIConnection()
    conn.receive_data(b"not a header\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    conn.receive_data(LOOKUP_BLOCK)  # dropped, never parsed
    assert drain(conn) == []
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed(state="error", unparsed=0)]
    assert [conn.next_event() for _ in range(3)] == [NEED_DATA] * 3


# -- the peer closing before the block is complete ------------------------------------------


def test_eof_at_every_byte_offset_of_the_header_block() -> None:
    for cut in range(len(LOOKUP_BLOCK)):
        conn = AGIConnection()
        conn.receive_data(LOOKUP_BLOCK[:cut])
        conn.receive_data(b"")
        partial = cut - (LOOKUP_BLOCK.rfind(b"\n", 0, cut) + 1)
        assert drain(conn) == [ConnectionClosed(state="headers", unparsed=partial)], cut
        assert [conn.next_event() for _ in range(3)] == [NEED_DATA] * 3, cut
        assert conn.state is State.CLOSED
        assert conn.request is None


def test_eof_right_after_the_header_block() -> None:
    conn = AGIConnection()
    conn.receive_data(LOOKUP_BLOCK)
    conn.receive_data(b"")
    events = drain(conn)
    assert events == [parse(LOOKUP_BLOCK), ConnectionClosed(state="idle", unparsed=0)]
    assert conn.next_event() is NEED_DATA


def test_eof_on_connect_like_a_tcp_health_check() -> None:
    conn = AGIConnection()
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(state="headers", unparsed=0)
    assert [conn.next_event() for _ in range(5)] == [NEED_DATA] * 5


# -- where the recordings come from --------------------------------------------------------------


def test_recordings_are_kept_in_the_repository() -> None:
    for name in transcripts.NAMES:
        kept = (transcripts.IN_REPO / name).read_bytes()
        assert kept.count(b"\n") == len(transcripts.load(name))
        shared = transcripts.SHARED / name
        if shared.is_file():  # beside the checkout where they were recorded: no drift
            assert kept == shared.read_bytes(), name


def test_the_environment_variable_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in transcripts.NAMES:
        (tmp_path / name).write_text('{"t": 0, "dir": "in", "data": "agi_network: yes\\n\\n"}\n')
    monkeypatch.setenv(transcripts.ENV_VAR, str(tmp_path))
    assert transcripts.directory() == tmp_path
    assert transcripts.load(transcripts.LOOKUP) == [(0.0, "in", "agi_network: yes\n\n")]


def test_missing_recordings_fail_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(transcripts.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=transcripts.ENV_VAR):
        transcripts.load(transcripts.LOOKUP)
