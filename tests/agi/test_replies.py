"""Reply lines, byte for byte: every shape res_agi writes, and what each one parses to."""

from __future__ import annotations

from typing import Any

import pytest

from fastagi_router.agi import AGIConnection, Reply, commands, parse_reply
from fastagi_router.errors import RemoteProtocolError
from tests import transcripts

# line -> (code, result, data, extra, interim)
RECORDED: dict[str, tuple[int, str | None, str | None, dict[str, str], bool]] = {
    # 01: GET VARIABLE set / unset, GET FULL VARIABLE, values with quotes and UTF-8
    "200 result=1 (0899990988)": (200, "1", "0899990988", {}, False),
    "200 result=0": (200, "0", None, {}, False),
    "200 result=1 (0899990988-19001234)": (200, "1", "0899990988-19001234", {}, False),
    "200 result=1": (200, "1", None, {}, False),
    '200 result=1 (O\'Brien "VIP" client)': (200, "1", 'O\'Brien "VIP" client', {}, False),
    "200 result=1 (Nguyễn Văn A)": (200, "1", "Nguyễn Văn A", {}, False),
    "200 result=1 (214)": (200, "1", "214", {}, False),
    # 01: unknown command
    "510 Invalid or unknown command": (510, None, None, {}, False),
    # 01: GET DATA with digits, and ended at once by '#' with none
    "200 result=1234": (200, "1234", None, {}, False),
    "200 result=": (200, "", None, {}, False),
    # 01: STREAM FILE, CHANNEL STATUS, DEVICE_STATE()/EXTENSION_STATE() without func_devstate
    "200 result=0 endpos=3520": (200, "0", None, {"endpos": "3520"}, False),
    "200 result=6": (200, "6", None, {}, False),
    "200 result=1 ()": (200, "1", "", {}, False),
    # 02: GET DATA when the caller hangs up
    "200 result=-1": (200, "-1", None, {}, False),
    # 04: anonymous caller
    "200 result=1 (anonymous)": (200, "1", "anonymous", {}, False),
}

FROM_RES_AGI: dict[str, tuple[int, str | None, str | None, dict[str, str], bool]] = {
    "100 result=0 Trying...": (100, "0", None, {}, True),
    "503 result=-2 Memory allocation failure": (503, "-2", None, {}, False),
    "511 Command Not Permitted on a dead channel or intercept routine": (
        511,
        None,
        None,
        {},
        False,
    ),
    "520 Invalid command syntax.  Proper usage not available.": (520, None, None, {}, False),
    "200 result= (timeout)": (200, "", "timeout", {}, False),
    "200 result=12 (timeout)": (200, "12", "timeout", {}, False),
    "200 result=0 (timeout) endpos=1234": (200, "0", "timeout", {"endpos": "1234"}, False),
    '200 result=1 (a (b) "c")': (200, "1", 'a (b) "c"', {}, False),
    "200 result=0012 (timeout)": (200, "0012", "timeout", {}, False),
    "200 result=*#0": (200, "*#0", None, {}, False),
    "200 result=1 ((x) endpos=5)": (200, "1", "(x) endpos=5", {}, False),
    "200 result=49 endpos=800 extra=x": (200, "49", None, {"endpos": "800", "extra": "x"}, False),
    "200 result=0 (hangup) endpos=0": (200, "0", "hangup", {"endpos": "0"}, False),
    "200 result=1 (two  spaces )": (200, "1", "two  spaces ", {}, False),
    "200 result=0 Some free text": (200, "0", None, {}, False),
}

TABLE = {**RECORDED, **FROM_RES_AGI}


def recorded_reply_lines() -> list[str]:
    """Every single-line reply in the recordings (not HANGUP, not inside a 520 block)."""
    found = []
    for entries in transcripts.load_all().values():
        in_usage = False
        for line in transcripts.in_lines(entries):
            if line.startswith("520-"):
                in_usage = True
            elif in_usage:
                in_usage = not line.startswith("520 ")
            elif line != "HANGUP":
                found.append(line)
    return found


def test_the_table_covers_every_recorded_reply_line() -> None:
    lines = recorded_reply_lines()
    assert len(lines) == 30  # 01: 26 commands, two answered by 520 blocks; 02: 5; 04: 1
    assert set(lines) == set(RECORDED)


@pytest.mark.parametrize(("line", "expected"), TABLE.items(), ids=list(TABLE))
def test_reply_shape(line: str, expected: tuple[Any, ...]) -> None:
    code, result, data, extra, interim = expected
    reply = parse_reply(line)
    assert reply.code == code
    assert reply.result == result
    assert reply.data == data
    assert dict(reply.extra) == extra
    assert reply.interim is interim
    assert reply.ok is (code == 200)
    assert reply.text == line


@pytest.mark.parametrize(("line", "expected"), TABLE.items(), ids=list(TABLE))
def test_reply_shape_through_the_connection(line: str, expected: tuple[Any, ...]) -> None:
    """The same bytes, with LF or CRLF, give the same reply once a command is outstanding."""
    for ending in (b"\n", b"\r\n"):
        conn = AGIConnection()
        conn.receive_data(b"agi_network: yes\n\n")
        conn.next_event()
        conn.send(commands.noop())
        conn.receive_data(line.encode() + ending)
        assert conn.next_event() == parse_reply(line)


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("200 result=1234", 1234),
        ("200 result=-1", -1),
        ("200 result=0012 (timeout)", 12),
        ("200 result=", None),
        ("200 result=*#0", None),
        ("510 Invalid or unknown command", None),
    ],
)
def test_result_as_a_number(line: str, number: int | None) -> None:
    assert parse_reply(line).result_int == number


def test_digits_stay_text() -> None:
    reply = parse_reply("200 result=0012")
    assert reply.result == "0012"
    assert reply == Reply(code=200, result="0012", text="200 result=0012")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "HANGUP",
        "hello",
        " 200 result=0",
        "20 result=0",
        "2000 result=0",
        "200result=0",
        "099 result=0",
        "600 result=0",
        "abc 200 result=0",
        "Sets a variable to the current channel.",
        "result=0",
    ],
)
def test_garbage_is_refused(line: str) -> None:
    with pytest.raises(RemoteProtocolError, match="not a FastAGI reply"):
        parse_reply(line)
