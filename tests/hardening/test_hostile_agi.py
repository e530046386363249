"""Hostile clients on the FastAGI port, over real TCP against a real Application.

Each test ends the same way: the hostile session ended in bounded time without a word to a
peer that never completed its header block, a well-behaved call placed in the middle of it
was answered, the server holds no connection afterwards, and the logs hold no error, no
traceback and no raw peer bytes. Bounds on time are generous margins (the server's own
timeouts are set short), not measurements; bench/hostile.py measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import pytest

from fastagi_router.simulator import CallSpec, Keypress, header_block
from tests.hardening.support import (
    alongside,
    assert_plain_variables,
    assert_quiet,
    good_call,
    raw,
    scripted,
    seed_good_caller,
    settle,
)


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastagi_router")


async def started(start_router: Any, **changes: Any) -> Any:
    router = await start_router(**changes)
    await seed_good_caller(router)
    return router


# -- before the header block ----------------------------------------------------------------


async def test_health_checks_many_in_a_row(start_router: Any, caplog: Any) -> None:
    router = await started(start_router)
    port = router.app.agi.port
    plain = [raw(port, half_close=True) for _ in range(150)]  # connect, FIN
    resets = [raw(port, abort=True) for _ in range(100)]  # connect, RST (a killed prober)
    partial = [raw(port, b"agi_network: yes\n", abort=True) for _ in range(50)]
    results = await alongside(router, *plain, *resets, *partial)
    assert all(r.received == b"" for r in results)
    assert all(r.closed_by in ("server", "client") and not r.reset for r in results[:150])
    await settle(router.app.agi)
    assert router.metrics.value("protocol_errors_total") == 0
    assert_quiet(caplog, max_warnings=0)
    await good_call(router)


async def test_silent_client_is_closed_by_the_header_timeout(
    start_router: Any, caplog: Any
) -> None:
    router = await started(start_router, agi={"header_timeout_ms": 300})
    [silent] = await alongside(router, raw(router.app.agi.port, wait=10))
    assert silent.closed_by == "server"
    assert silent.received == b""
    assert silent.elapsed < 5
    assert router.metrics.value("sessions_total", outcome="header_timeout") == 1
    await settle(router.app.agi)
    assert_quiet(caplog, max_warnings=0)


@pytest.mark.parametrize(
    ("chunk", "delay"),
    [(1, 0.25), (len(b"agi_network: yes\n"), 0.2)],
    ids=["one-byte-at-a-time", "one-line-at-a-time"],
)
async def test_trickling_client_is_closed_by_the_header_timeout(
    start_router: Any, caplog: Any, chunk: int, delay: float
) -> None:
    """Bytes that keep coming do not extend the header timeout: it runs from the accept."""
    router = await started(start_router, agi={"header_timeout_ms": 1000})
    block = b"agi_network: yes\n" * 200 + header_block(CallSpec(callerid="anonymous"))
    assert len(block) / chunk * delay > 20  # the whole block would take far longer than 10 s
    [trickle] = await alongside(router, raw(router.app.agi.port, block, chunk=chunk, delay=delay))
    assert trickle.closed_by == "server"
    assert trickle.received == b""
    assert trickle.elapsed < 5
    assert router.metrics.value("sessions_total", outcome="header_timeout") == 1
    await settle(router.app.agi)
    assert_quiet(caplog, max_warnings=0)


async def test_endless_header_line(start_router: Any, caplog: Any) -> None:
    router = await started(start_router)
    endless = b"agi_network: " + b"y" * 4_000_000
    [result] = await alongside(router, raw(router.app.agi.port, endless, chunk=65536))
    assert result.closed_by == "server"
    assert result.received == b""
    assert router.metrics.value("protocol_errors_total") == 1
    await settle(router.app.agi)
    assert_quiet(caplog, max_warnings=1)


async def test_header_block_of_megabytes(start_router: Any, caplog: Any) -> None:
    router = await started(start_router)
    lines = b"".join(b"agi_x%d: %d\n" % (n, n) for n in range(250_000))  # ~4 MB
    assert len(lines) > 3_000_000
    [result] = await alongside(router, raw(router.app.agi.port, lines, chunk=65536))
    assert result.closed_by == "server"
    assert result.received == b""
    assert router.metrics.value("protocol_errors_total") == 1
    await settle(router.app.agi)
    assert_quiet(caplog, max_warnings=1)


@pytest.mark.parametrize("seed", range(8))
async def test_binary_garbage_before_the_header_block(
    start_router: Any, caplog: Any, seed: int
) -> None:
    rng = random.Random(seed)
    garbage = rng.randbytes(rng.choice([1, 100, 5000, 70_000, 300_000]))
    router = await started(start_router, agi={"header_timeout_ms": 500})
    [result] = await alongside(
        router, raw(router.app.agi.port, garbage, chunk=rng.choice([1 << 16, 1000, 7]))
    )
    assert result.received == b""
    assert result.closed_by == "server"
    await settle(router.app.agi)
    ended = router.metrics.value("protocol_errors_total") + router.metrics.value(
        "sessions_total", outcome="header_timeout"
    )
    assert ended == 1
    assert_quiet(caplog, max_warnings=1)


# -- invalid UTF-8 in every header the router reads ------------------------------------------

BAD_UTF8 = [
    b"\xff\xfe",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
    b"\xe2\x82",
]


def _with(block: bytes, name: bytes, value: bytes) -> bytes:
    lines = block.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(name + b": "):
            lines[i] = name + b": " + value
    return b"\n".join(lines)


@pytest.mark.parametrize("bad", BAD_UTF8, ids=lambda b: b.hex())
@pytest.mark.parametrize(
    ("header", "value", "status", "reason"),
    [
        (b"agi_callerid", b"0899990988%s", "AGENT", ""),
        (b"agi_callerid", b"%s", "UNKNOWN", "no_code"),
        (b"agi_calleridname", b"Ng%suy\xe1\xbb\x85n", "AGENT", ""),
        (b"agi_network_script", b"route%s?account=CL0000", "FALLBACK", "unknown_script"),
        (b"agi_network_script", b"route?account=CL%s", "FALLBACK", "bad_request"),
        (b"agi_uniqueid", b"17956%s.1", "AGENT", ""),
        (b"agi_extension", b"1900%s", "AGENT", ""),
    ],
)
async def test_invalid_utf8_in_the_header_block(
    start_router: Any,
    caplog: Any,
    bad: bytes,
    header: bytes,
    value: bytes,
    status: str,
    reason: str,
) -> None:
    router = await started(start_router, prompt={"attempts": 1})
    spec = CallSpec(port=router.app.agi.port)
    block = _with(header_block(spec), header, value.replace(b"%s", bad))
    [played] = await alongside(
        router, scripted(router.app.agi.port, spec, [Keypress("")], headers=block)
    )
    assert not played.reset
    assert played.closed_by == "server"
    assert played.variables["SMARTROUTING_STATUS"] == status
    assert played.variables["SMARTROUTING_REASON"] == reason
    assert_plain_variables(played.variables)
    await settle(router.app.agi)
    assert_quiet(caplog, max_warnings=1)


async def test_invalid_utf8_in_agi_arguments(start_router: Any, caplog: Any) -> None:
    router = await started(start_router)
    spec = CallSpec(port=router.app.agi.port, args=("account=CL0000", "x"))
    block = (
        header_block(spec)
        .replace(b"account=CL0000", b"account=\xff\xfe")
        .replace(b"agi_arg_2: x", b"agi_arg_2: \xed\xa0\x80\x00")
    )
    played = await scripted(router.app.agi.port, spec, headers=block)
    assert played.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert played.variables["SMARTROUTING_REASON"] == "bad_request"
    assert not played.reset
    await settle(router.app.agi)
    assert_quiet(caplog, max_warnings=1)


# -- after the header block: replies the router never asked for ------------------------------


async def _session(port: int, callerid: str, script: list[bytes], wait: float = 10.0) -> Any:
    """Send the header block, then after each command line the next item of ``script``
    (without looking at it); read until the server closes. Returns (commands, result)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(header_block(CallSpec(callerid=callerid)) + script[0])
    commands: list[bytes] = []
    reset = False
    try:
        async with asyncio.timeout(wait):
            while line := await reader.readline():
                commands.append(line)
                if len(commands) < len(script):
                    writer.write(script[len(commands)])
    except ConnectionResetError:
        reset = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return commands, reset


@pytest.mark.parametrize(
    ("callerid", "script", "commands_sent"),
    [
        # A reply before any command (the unknown caller's task has not even started).
        ("anonymous", [b"200 result=0\n"], 0),
        # Two replies to ANSWER: the second is unsolicited.
        ("anonymous", [b"", b"200 result=0\n200 result=0\n"], 1),
        # A reply that is not one, a status out of range, a status with no space.
        ("anonymous", [b"", b"\x00\xff garbage\n"], 1),
        ("anonymous", [b"", b"600 result=0\n"], 1),
        ("anonymous", [b"", b"2000 result=0\n"], 1),
        # A usage block that never ends.
        ("anonymous", [b"", b"520-usage\n" + b"more usage\n" * 300], 1),
        # An endless reply line.
        ("anonymous", [b"", b"200 result=" + b"1" * 100_000], 1),
        # The recognised caller's answer gets garbage, then two replies.
        ("0899990988", [b"", b"HTTP/1.1 200 OK\r\n\r\n"], 1),
        ("0899990988", [b"", b"200 result=0\n200 result=0\n"], 1),
    ],
    ids=[
        "reply-first",
        "two-replies",
        "garbage-reply",
        "status-600",
        "status-2000",
        "endless-usage",
        "endless-reply-line",
        "http-to-answer",
        "two-replies-to-answer",
    ],
)
async def test_unsolicited_or_broken_replies(
    start_router: Any, caplog: Any, callerid: str, script: list[bytes], commands_sent: int
) -> None:
    router = await started(start_router)
    # The server may close on the unread rest of a broken peer's flood: a reset is fine here.
    [(commands, _reset)] = await alongside(router, _session(router.app.agi.port, callerid, script))
    assert len(commands) == commands_sent
    await settle(router.app.agi)
    # The recognised caller's answer is complete once its reply is read: what follows in the
    # same read is never parsed (the session is closed); every other case is a protocol error.
    answered = callerid == "0899990988" and script[1].startswith(b"200 result=0\n")
    assert router.metrics.value("protocol_errors_total") == (0 if answered else 1)
    assert router.metrics.total("sessions_total") == 2  # this one and the good one, once each
    # A peer that breaks the protocol is not an internal error: nothing answered FALLBACK.
    assert router.metrics.value("calls_total", reason="error") == 0
    assert_quiet(caplog, max_warnings=1)


async def test_interim_replies_and_hangup_lines_are_read_through(
    start_router: Any, caplog: Any
) -> None:
    """``100 Trying`` lines and repeated ``HANGUP`` lines are allowed by the protocol: the
    call goes on (or ends as hung up) and nothing breaks."""
    router = await started(start_router, prompt={"attempts": 1})
    flood = b"100 result=0 Trying...\n" * 2000 + b"200 result=0\n"
    hangups = b"HANGUP\n" * 2000 + b"200 result=\n"
    script = [b"", flood, hangups, b"200 result=0\n"]
    [(commands, reset)] = await alongside(
        router, _session(router.app.agi.port, "anonymous", script)
    )
    assert [c.split(b" ")[0] for c in commands] == [b"ANSWER\n", b"GET"]
    assert not reset
    await settle(router.app.agi)
    assert router.metrics.value("sessions_total", outcome="hangup") == 1
    assert_quiet(caplog, max_warnings=0)


async def test_silent_asterisk_during_a_prompt_is_bounded(start_router: Any, caplog: Any) -> None:
    """A peer that sends the header block and never replies holds a session only for the
    prompt timeout (a command that plays media) or twice the reply grace (the answer)."""
    router = await started(
        start_router, agi={"prompt_timeout_ms": 300, "reply_grace_ms": 200}, prompt={"attempts": 1}
    )
    port = router.app.agi.port
    results = await alongside(
        router,
        raw(port, header_block(CallSpec(callerid="anonymous")), wait=10),
        raw(port, header_block(CallSpec(callerid="0899990988", uniqueid="x.2")), wait=10),
    )
    assert [r.closed_by for r in results] == ["server", "server"]
    assert results[0].received == b"ANSWER\n"
    assert results[1].received.startswith(b"EXEC MSet ")
    assert all(r.elapsed < 5 for r in results)
    await settle(router.app.agi)
    assert router.metrics.value("sessions_total", outcome="no_reply") == 1
    assert router.metrics.value("prompt_overruns_total") == 1
    assert_quiet(caplog, max_warnings=2)


async def test_header_blocks_that_crashed_the_parser(start_router: Any, caplog: Any) -> None:
    """Found by tests/hardening/test_agi_fuzz.py: an empty header block, and an argument
    named with a Unicode digit, raised out of the protocol layer (an asyncio 'fatal error'
    with a traceback in the log, the connection aborted)."""
    router = await started(start_router)
    spec = CallSpec(port=router.app.agi.port, callerid="0899990988", uniqueid="arg.1")
    block = header_block(spec).replace(b"\n\n", "\nagi_arg_\u00b2: x\n\n".encode())
    results = await alongside(
        router,
        raw(router.app.agi.port, b"\n\n", half_close=True),
        scripted(router.app.agi.port, spec, headers=block),
    )
    assert results[0].closed_by == "server" and not results[0].reset
    assert results[1].variables["SMARTROUTING_STATUS"] == "AGENT"
    await settle(router.app.agi)
    assert router.metrics.total("sessions_total") == 3
    # b"\n" is an empty header block; the second b"\n" is a line nobody asked for.
    assert router.metrics.value("protocol_errors_total") == 1
    assert_quiet(caplog, max_warnings=1)


async def test_refused_peers_cannot_fill_the_log(start_router: Any, caplog: Any) -> None:
    """Anyone who reaches the port can connect: a refused address is logged once, counted
    every time."""
    router = await start_router(agi={"allow": ("10.0.0.0/8",)})
    results = await asyncio.gather(*(raw(router.app.agi.port, wait=5) for _ in range(200)))
    assert all(r.closed_by == "server" and r.received == b"" for r in results)
    await settle(router.app.agi)
    assert router.metrics.value("sessions_refused_total", reason="allowlist") == 200
    refused = [r for r in caplog.records if "not in agi.allow" in r.getMessage()]
    assert len(refused) == 1
    assert_quiet(caplog, max_warnings=1)
