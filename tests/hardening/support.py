"""Hostile FastAGI peers over real TCP, and the checks every hostile test ends with.

`raw` is a client that sends bytes (all at once, in chunks, or a trickle) and reads until the
server closes. `Scripted` plays Asterisk with `SimulatedChannel`'s replies, and breaks the
session at one chosen command in one chosen way (a ``HANGUP`` before or after the reply, a
close before or after it, half a reply, a TCP reset). `settle` waits until the server holds
no connection; `assert_quiet` checks the logs; `good_call` is the well-behaved call that
runs alongside every hostile one and must still be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from fastagi_router.simulator import CallSpec, Keypress, SimulatedChannel, header_block

#: The caller that `good_call` places: recognised by number (see `seed_good_caller`).
GOOD_CALLER = "0899990988"
#: What a dialplan can put into Dial()/Queue() without it being split or evaluated.
PLAIN = re.compile(r"[A-Za-z0-9_.@/+*#:-]*")
SMARTROUTING_NAMES = frozenset(
    "SMARTROUTING_" + name
    for name in (
        "AGENT",
        "AGENT_STATE",
        "DEST1",
        "DEST2",
        "DEST3",
        "DEST4",
        "VIP",
        "ONCALL",
        "CUSTOMER",
        "NUMBER",
        "IDENTIFIED_BY",
        "SOURCE",
        "REASON",
        "STATUS",
    )
)


@dataclass
class RawResult:
    """What a raw client saw: the bytes the server sent, who closed, and how long it took."""

    received: bytes
    #: "server" when the server closed (or reset) first; "client" when the client gave up.
    closed_by: str
    reset: bool
    elapsed: float


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed or killed peer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def raw(
    port: int,
    data: bytes = b"",
    *,
    chunk: int | None = None,
    delay: float = 0.0,
    half_close: bool = False,
    abort: bool = False,
    wait: float = 10.0,
) -> RawResult:
    """Connect, send ``data`` (in ``chunk``-byte pieces ``delay`` apart), then read until the
    server closes or ``wait`` seconds have passed.

    ``half_close`` sends a FIN after the data; ``abort`` resets the connection right after
    the data instead of reading anything.
    """
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    closed_by = "client"
    reset = False

    async def send() -> None:
        step = chunk or max(len(data), 1)
        for offset in range(0, len(data), step):
            writer.write(data[offset : offset + step])
            await writer.drain()
            if delay:
                await asyncio.sleep(delay)
        if half_close:
            writer.write_eof()

    async def receive() -> None:
        while block := await reader.read(65536):
            received.extend(block)

    try:
        if abort:
            await send()
            _abort(writer)
            return RawResult(b"", "client", False, time.monotonic() - start)
        sender = asyncio.ensure_future(send())
        try:
            async with asyncio.timeout(wait):
                await receive()
            closed_by = "server"
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
    except (ConnectionResetError, BrokenPipeError):
        closed_by, reset = "server", True
    except TimeoutError:
        closed_by = "client"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return RawResult(bytes(received), closed_by, reset, time.monotonic() - start)


#: The ways `Scripted` can break a session at command ``at``.
ACTIONS = (
    "hangup_before_reply",  # HANGUP, then the reply (Asterisk noticed it inside the command)
    "hangup_after_reply",  # the reply, then HANGUP (noticed while waiting for the next one)
    "close_before_reply",  # close (FIN) instead of replying
    "close_after_reply",  # reply, then close
    "half_reply_close",  # half of the reply line, then close
    "reset_before_reply",  # TCP reset instead of replying
)


@dataclass
class Played:
    """One scripted session: the commands received, the variables set, how it ended."""

    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    #: "server" when the server closed first, "asterisk" when the script closed, "timeout".
    closed_by: str = "server"
    #: True when the server's close came as a reset (it closed on unread bytes).
    reset: bool = False


async def scripted(
    port: int,
    spec: CallSpec,
    keypresses: Sequence[Keypress] = (),
    *,
    at: int | None = None,
    action: str = "",
    headers: bytes | None = None,
    agiexecfull: bool = False,
    wait: float = 10.0,
) -> Played:
    """Play one call with Asterisk's replies, breaking it at command ``at`` with ``action``.

    Prompts reply at once (the timing rules are the simulator's business; this is about
    where the session breaks).
    """
    assert action in ACTIONS or at is None, action
    channel = SimulatedChannel(spec=spec, keypresses=list(keypresses), agiexecfull=agiexecfull)
    played = Played()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        async with asyncio.timeout(wait):
            writer.write(headers if headers is not None else header_block(spec))
            await writer.drain()
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\n")
                played.commands.append(text)
                number = len(played.commands)
                if number == at and action in ("close_before_reply", "reset_before_reply"):
                    if action == "reset_before_reply":
                        _abort(writer)
                    played.closed_by = "asterisk"
                    return played
                if number == at and action == "hangup_before_reply":
                    channel.hung_up = True
                    writer.write(b"HANGUP\n")
                reply = "".join(f"{r}\n" for r in channel.execute(text).lines).encode()
                if number == at and action == "half_reply_close":
                    writer.write(reply[: max(len(reply) // 2, 1)])
                    await writer.drain()
                    played.closed_by = "asterisk"
                    return played
                if number == at and action == "hangup_after_reply":
                    channel.hung_up = True
                    reply += b"HANGUP\n"
                writer.write(reply)
                await writer.drain()
                if number == at and action == "close_after_reply":
                    played.closed_by = "asterisk"
                    return played
    except (ConnectionResetError, BrokenPipeError):
        played.reset = True
    except TimeoutError:
        played.closed_by = "timeout"
    finally:
        for name, value in channel.assignments:
            played.variables[name] = value
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return played


def session_tasks() -> list[asyncio.Task[Any]]:
    """The engine's call tasks still running (one per call on the task path)."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "_AGIProtocol._run" and not t.done()
    ]


async def settle(agi: Any, limit: float = 10.0) -> None:
    """Wait until the server holds no connection and runs no call task, then check that its
    counts are back to 0.

    A call's task ends just after its connection (it is woken by the close), so both are
    waited for. Fails after ``limit`` seconds: either one outliving every timeout is a leak.
    """
    deadline = time.monotonic() + limit
    while agi.connections or agi.watched or session_tasks():
        if time.monotonic() > deadline:
            pytest.fail(
                f"{len(agi.connections)} connection(s) and {len(session_tasks())} call "
                f"task(s) still there after {limit} s"
            )
        await asyncio.sleep(0.01)
    assert agi.active == 0
    assert agi.overloaded == 0


def assert_quiet(caplog: pytest.LogCaptureFixture, *, max_warnings: int | None = None) -> None:
    """No error logged, no traceback, every line free of raw control characters (peer data
    is sanitised), and at most ``max_warnings`` warnings (no log flood)."""
    records = [r for r in caplog.records if r.name.startswith(("fastagi_router", "asyncio"))]
    loud = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    for record in records:
        message = record.getMessage()
        assert message.isprintable(), message
    if max_warnings is not None:
        warnings = [r for r in records if r.levelno == logging.WARNING]
        assert len(warnings) <= max_warnings, [r.getMessage() for r in warnings]


async def seed_good_caller(router: Any) -> None:
    """Give `GOOD_CALLER` a sticky agent, so that `good_call` is one round trip."""
    await router.store.set_route("default", GOOD_CALLER, "+84899990988", "104")


async def good_call(router: Any) -> None:
    """Place a well-behaved call and check it is answered in full, with no reset."""
    result = await router.asterisk.call(
        CallSpec(callerid=GOOD_CALLER, port=router.app.agi.port, uniqueid="good.1"), timeout=10
    )
    assert result.status == "AGENT", result.transcript
    assert result.variables["SMARTROUTING_AGENT"] == "104"
    assert not result.reset
    assert result.closed_by == "server"


async def alongside(router: Any, *hostile: Any) -> list[Any]:
    """Run the ``hostile`` coroutines with a good call in the middle of them; return their
    results once all have ended. The good call must be answered whatever they do."""
    tasks = [asyncio.ensure_future(h) for h in hostile]
    await asyncio.sleep(0.01)  # let them connect and start misbehaving
    await good_call(router)
    return list(await asyncio.gather(*tasks))


def assert_plain_variables(variables: dict[str, str]) -> None:
    """Only SMARTROUTING_* variables were set, and every value is a plain dialplan token."""
    assert set(variables) <= SMARTROUTING_NAMES, set(variables) - SMARTROUTING_NAMES
    for name, value in variables.items():
        assert PLAIN.fullmatch(value), (name, value)
