"""Plays Asterisk against a FastAGI server over TCP, with Asterisk's timing rules.

`place_call` connects, sends the header block, answers every command the way
`SimulatedChannel` says, and reads until the server closes. While a prompt plays (GET DATA,
STREAM FILE, ...) it watches the socket as Asterisk does: a byte from the server interrupts
the prompt, which then gets no reply at all, and the new command is run instead.

Hang-ups are injected the ways Asterisk produces them: during a prompt (``result=-1``, then
a ``HANGUP`` line before the next reply), at a given command (``HANGUP`` then the reply, as
on a dead channel), or while the server is silent (``HANGUP`` on its own).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastagi_router.simulator.channel import CallSpec, Keypress, SimulatedChannel, header_block

_LINE_LIMIT = 64 * 1024


@dataclass
class CallResult:
    """What happened on one simulated call."""

    #: The variables the server set, last value of each.
    variables: dict[str, str]
    #: Every command line the server sent, in order.
    commands: list[str]
    #: (seconds since connect, "in" | "out" | "note", text) as in the recordings:
    #: "in" is what Asterisk sent, "out" what the server sent.
    transcript: list[tuple[float, str, str]]
    #: "server" when the server closed first, "asterisk" when this side did, "timeout",
    #: or "refused" when nothing listened (Asterisk then sets AGISTATUS=FAILURE).
    closed_by: str
    #: True when the server's close came as a TCP reset.
    reset: bool
    elapsed: float
    #: Commands whose reply was never sent because a later command interrupted them.
    interrupted: int = 0

    @property
    def round_trips(self) -> int:
        """Commands that got a reply (interrupted prompts do not count)."""
        return len(self.commands) - self.interrupted

    @property
    def status(self) -> str:
        """SMARTROUTING_STATUS as set, "" when the server never set it."""
        return self.variables.get("SMARTROUTING_STATUS", "")


@dataclass
class Faults:
    """Deviations from a plain call, to test what the server does with them."""

    #: Hang up when the Nth command (1-based) arrives: HANGUP, then its reply.
    hangup_at: int | None = None
    #: After the header block, if the server says nothing for this long, send HANGUP.
    hangup_when_idle: float | None = None
    #: The channel variable AGISIGHUP=no: never send the HANGUP line.
    no_sighup: bool = False
    #: Close the socket (without replying) when the Nth command arrives.
    close_at: int | None = None
    #: Seconds to wait before each reply (a loaded Asterisk).
    reply_delay: float = 0.0
    #: Send the header block in pieces of this many bytes, with ``chunk_delay`` between.
    chunk_size: int | None = None
    chunk_delay: float = 0.0
    #: Bytes to send instead of a real header block.
    raw_headers: bytes | None = None


@dataclass
class Asterisk:
    """A simulated Asterisk that places calls to one FastAGI server."""

    host: str = "127.0.0.1"
    port: int = 4573
    device_states: dict[str, str] = field(default_factory=dict)
    mset_available: bool = True
    agiexecfull: bool = False

    async def call(
        self,
        spec: CallSpec | None = None,
        keypresses: Sequence[Keypress] = (),
        faults: Faults | None = None,
        timeout: float = 30.0,
    ) -> CallResult:
        """Place one call; return what happened. Never raises on what the server does."""
        spec = spec or CallSpec(host=self.host, port=self.port)
        channel = SimulatedChannel(
            spec=spec,
            keypresses=list(keypresses),
            device_states=dict(self.device_states),
            mset_available=self.mset_available,
            agiexecfull=self.agiexecfull,
        )
        return await _run_call(self.host, self.port, channel, faults or Faults(), timeout)


async def place_call(
    host: str,
    port: int,
    spec: CallSpec | None = None,
    keypresses: Sequence[Keypress] = (),
    *,
    faults: Faults | None = None,
    timeout: float = 30.0,
) -> CallResult:
    """Place one call to ``host:port`` (see `Asterisk.call`)."""
    return await Asterisk(host, port).call(spec, keypresses, faults, timeout)


class _Call:
    def __init__(self, channel: SimulatedChannel, faults: Faults) -> None:
        self.channel = channel
        self.faults = faults
        self.start = time.monotonic()
        self.transcript: list[tuple[float, str, str]] = []
        self.commands: list[str] = []
        self.interrupted = 0
        self.sighup_pending = False
        self.sighup_sent = False

    def note(self, direction: str, text: str) -> None:
        self.transcript.append((round(time.monotonic() - self.start, 6), direction, text))


async def _run_call(
    host: str, port: int, channel: SimulatedChannel, faults: Faults, timeout: float
) -> CallResult:
    call = _Call(channel, faults)
    closed_by = "server"
    reset = False
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=_LINE_LIMIT)
            await _send_headers(call, writer)
            closed_by = await _converse(call, reader, writer)
    except TimeoutError:
        closed_by = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        reset = True
    except ConnectionRefusedError:
        closed_by = "refused"
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionResetError, BrokenPipeError):
                reset = True
    variables: dict[str, str] = {}
    for name, value in channel.assignments:
        variables[name] = value
    return CallResult(
        variables=variables,
        commands=call.commands,
        transcript=call.transcript,
        closed_by=closed_by,
        reset=reset,
        elapsed=time.monotonic() - call.start,
        interrupted=call.interrupted,
    )


async def _send_headers(call: _Call, writer: asyncio.StreamWriter) -> None:
    block = call.faults.raw_headers
    if block is None:
        block = header_block(call.channel.spec)
    call.note("in", block.decode("utf-8", errors="replace"))
    size = call.faults.chunk_size
    if size is None:
        writer.write(block)
        await writer.drain()
        return
    for start in range(0, len(block), size):
        writer.write(block[start : start + size])
        await writer.drain()
        await asyncio.sleep(call.faults.chunk_delay)


async def _send(call: _Call, writer: asyncio.StreamWriter, lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines)
    call.note("in", data)
    writer.write(data.encode("utf-8"))
    await writer.drain()


async def _converse(call: _Call, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    faults = call.faults
    pending: asyncio.Task[bytes] = asyncio.ensure_future(reader.readline())
    try:
        if faults.hangup_when_idle is not None:
            done, _ = await asyncio.wait({pending}, timeout=faults.hangup_when_idle)
            if not done:
                call.channel.hung_up = True
                if not faults.no_sighup:
                    call.sighup_sent = True
                    await _send(call, writer, ["HANGUP"])
        while True:
            raw = await pending
            if not raw:
                call.note("note", "server closed")
                return "server"
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            call.note("out", line + "\n")
            call.commands.append(line)
            number = len(call.commands)
            if faults.close_at == number:
                call.note("note", "closing")
                return "asterisk"
            if faults.hangup_at == number and not call.channel.hung_up:
                call.channel.hung_up = True
                call.sighup_pending = True
            if call.sighup_pending and not call.sighup_sent and not faults.no_sighup:
                call.sighup_sent = True
                await _send(call, writer, ["HANGUP"])
            was_up = not call.channel.hung_up
            outcome = call.channel.execute(line)
            if was_up and call.channel.hung_up:
                call.sighup_pending = True  # noticed during this command: HANGUP comes next
            pending = asyncio.ensure_future(reader.readline())
            if outcome.prompt and outcome.duration > 0:
                done, _ = await asyncio.wait({pending}, timeout=outcome.duration)
                if done:
                    call.interrupted += 1
                    call.note("note", "prompt interrupted: no reply")
                    continue
            if faults.reply_delay:
                await asyncio.sleep(faults.reply_delay)
            await _send(call, writer, outcome.lines)
    finally:
        if not pending.done():
            pending.cancel()
