"""A fake Asterisk Manager over TCP that behaves as Asterisk 23 did in the recordings.

What it does, and where each behaviour comes from:

* On connect it sends the banner line of the recordings (``Asterisk Call Manager/12.0.0``).
* ``Login`` with the right username and secret: ``Response: Success`` with the action's
  ``ActionID`` and ``Message: Authentication accepted``, then ``FullyBooted`` (Asterisk
  appends it to every login) and the recorded ``SuccessfulAuth``. Wrong credentials:
  ``Response: Error`` / ``Message: Authentication failed`` after ``auth_delay`` (Asterisk
  sleeps one second there), then the connection is closed, as manager.c's action_login
  does.
* ``Ping``: ``Response: Success`` / ``Ping: Pong`` / ``Timestamp``, unless ``answer_pings``
  is False (a link that stopped answering while the socket stays up).
* Events go only to logged-in sessions whose user may read their class (``read``) and
  that asked for it at login (``Events: on``, ``off``, or a class list), judged from each
  event's ``Privilege`` header, as Asterisk filters them.
* Recorded events are replayed byte for byte; the recorder's own ``Originate`` response
  and the login exchange are not replayed as events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "ami-transcripts"
QUEUE_CALL = "01-queue-call-answered-by-agent.ami"
DIRECT_DIAL = "02-direct-dial-answered.ami"
CRLF = b"\r\n"
END = b"\r\n\r\n"


@dataclass(frozen=True)
class Recording:
    """A recorded Manager stream cut into what the fake replays."""

    banner: bytes
    #: Sent after a successful login (FullyBooted, SuccessfulAuth), byte for byte.
    after_login: tuple[bytes, ...]
    #: Every event of the call, in order, each block ending with a blank line.
    events: tuple[bytes, ...]

    def index(self, event: str, nth: int = 1) -> int:
        """Position in ``events`` of the ``nth`` event named ``event``."""
        seen = 0
        for position, block in enumerate(self.events):
            if block.startswith(b"Event: " + event.encode() + CRLF):
                seen += 1
                if seen == nth:
                    return position
        raise LookupError(f"no {event} #{nth} in the recording")


def load(name: str) -> Recording:
    """Read one recording from tests/data/ami-transcripts."""
    data = (RECORDINGS / name).read_bytes()
    banner, _, rest = data.partition(CRLF)
    blocks = [block + END for block in rest.split(END) if block]
    login_reply, *others = blocks
    assert login_reply.startswith(b"Response: Success\r\n"), "recording starts with the login"
    after_login = []
    events = []
    for block in others:
        if not block.startswith(b"Event: "):
            continue  # the Originate response belongs to the recorder's own action
        name_line = block.split(CRLF, 1)[0]
        if not events and name_line in (b"Event: FullyBooted", b"Event: SuccessfulAuth"):
            after_login.append(block)
        else:
            events.append(block)
    return Recording(banner + CRLF, tuple(after_login), tuple(events))


def with_variable(block: bytes, name: str, value: str, form: str = "12") -> bytes:
    """Return ``block`` with the channel variable ``name`` as manager.conf ``channelvars``
    adds it after each channel's fields: ``form`` "12" writes ``ChanVariable: NAME=value``
    (and ``DestChanVariable`` for the dialled side) as Asterisk 12 and later do, "11" writes
    ``ChanVariable(<channel>): NAME=value``, "named" writes ``ChanVariable(NAME): value``."""
    lines = block[: -len(END)].split(CRLF)
    out: list[bytes] = []
    channels = {
        line.split(b": ", 1)[0]: line.split(b": ", 1)[1]
        for line in lines
        if line.startswith((b"Channel: ", b"DestChannel: "))
    }
    for line in lines:
        out.append(line)
        for prefix in (b"", b"Dest"):
            if not line.startswith(prefix + b"Linkedid: "):
                continue
            channel = channels.get(prefix + b"Channel", b"")
            if form == "12":
                out.append(prefix + b"ChanVariable: " + f"{name}={value}".encode())
            elif form == "11":
                out.append(
                    prefix + b"ChanVariable(" + channel + b"): " + f"{name}={value}".encode()
                )
            else:
                out.append(prefix + b"ChanVariable(" + name.encode() + b"): " + value.encode())
    return CRLF.join(out) + END


def parse_action(block: bytes) -> dict[str, str]:
    """Headers of one action a client sent (names as written)."""
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            headers.setdefault(key.strip(), value.strip())
    return headers


def _classes(block: bytes) -> set[str]:
    for line in block.split(CRLF):
        if line.startswith(b"Privilege: "):
            return set(line[len(b"Privilege: ") :].decode().split(",")) - {"all"}
    return set()


@dataclass
class Session:
    """One client connection."""

    writer: asyncio.StreamWriter
    username: str = ""
    mask: str = ""
    logged_in: bool = False
    actions: list[dict[str, str]] = field(default_factory=list)


class FakeManager:
    """The fake Manager server. ``await start()``, then ``send`` events; ``stop()`` after."""

    def __init__(
        self,
        *,
        username: str = "router",
        secret: str = "s3cret",
        read: Iterable[str] = ("call", "agent"),
        recording: Recording | None = None,
        auth_delay: float = 0.0,
    ) -> None:
        self.username = username
        self.secret = secret
        self.read = set(read)
        self.recording = recording or load(QUEUE_CALL)
        self.auth_delay = auth_delay
        self.answer_pings = True
        #: Accept connections and read actions but send nothing at all (a wedged Asterisk,
        #: or something else listening on the port).
        self.silent = False
        self.port = 0
        self.sessions: list[Session] = []
        #: (username, accepted, Events mask) for every Login received.
        self.logins: list[tuple[str, bool, str]] = []
        self.pings = 0
        self.connections = 0
        #: Every action received, from every connection, in order.
        self.actions: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, port: int | None = None) -> None:
        """Listen on 127.0.0.1 (on ``port``, the previous port, or a free one)."""
        port = self.port if port is None else port
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection, as a stopping Asterisk does."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop()

    async def drop(self) -> None:
        """Close every client connection at once; keep listening."""
        for session in list(self.sessions):
            session.writer.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def logged_in(self) -> list[Session]:
        """Sessions logged in now."""
        return [s for s in self.sessions if s.logged_in]

    async def send(self, blocks: Iterable[bytes], *, chunk: int | None = None) -> int:
        """Send event blocks to every logged-in session that may see them; ``chunk`` cuts the
        bytes into writes of that size. Returns how many blocks the sessions were sent."""
        sent = 0
        for session in self.logged_in():
            data = b"".join(b for b in blocks if self._visible(session, b))
            sent += sum(1 for b in blocks if self._visible(session, b))
            await self._write(session, data, chunk)
        return sent

    async def send_raw(self, data: bytes, *, chunk: int | None = None) -> None:
        """Send ``data`` as is to every logged-in session (malformed input)."""
        for session in self.logged_in():
            await self._write(session, data, chunk)

    def _visible(self, session: Session, block: bytes) -> bool:
        classes = _classes(block)
        if not classes <= self.read or session.mask == "off":
            return False
        return session.mask == "on" or classes <= set(session.mask.split(","))

    @staticmethod
    async def _write(session: Session, data: bytes, chunk: int | None) -> None:
        size = chunk or len(data) or 1
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(data), size):
                session.writer.write(data[start : start + size])
                await session.writer.drain()

    # -- one connection --------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = Session(writer)
        self.sessions.append(session)
        self.connections += 1
        try:
            if not self.silent:
                writer.write(self.recording.banner)
            while True:
                block = await reader.readuntil(END)
                action = parse_action(block)
                session.actions.append(action)
                self.actions.append(action)
                if self.silent:
                    continue
                if not await self._act(session, action):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self.sessions.remove(session)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _act(self, session: Session, action: dict[str, str]) -> bool:
        """Answer one action; False when the connection must close."""
        name = action.get("Action", "").lower()
        action_id = action.get("ActionID")
        head = b"ActionID: " + action_id.encode() + CRLF if action_id is not None else b""
        if name == "login":
            ok = (action.get("Username"), action.get("Secret")) == (self.username, self.secret)
            self.logins.append((action.get("Username", ""), ok, action.get("Events", "on")))
            if not ok:
                await asyncio.sleep(self.auth_delay)
                session.writer.write(
                    b"Response: Error\r\n" + head + b"Message: Authentication failed\r\n\r\n"
                )
                return False
            session.username = action.get("Username", "")
            session.mask = action.get("Events", "on").lower()
            session.logged_in = True
            reply = b"Response: Success\r\n" + head + b"Message: Authentication accepted\r\n\r\n"
            session.writer.write(reply)
            fully_booted, *others = self.recording.after_login
            session.writer.write(
                fully_booted + b"".join(b for b in others if self._visible(session, b))
            )
            return True
        if name == "ping":
            self.pings += 1
            if self.answer_pings:
                stamp = f"{time.time():.6f}".encode()
                session.writer.write(
                    b"Response: Success\r\n" + head + b"Ping: Pong\r\nTimestamp: " + stamp + END
                )
            return True
        if name == "logoff":
            session.writer.write(
                b"Response: Goodbye\r\n" + head + b"Message: Thanks for all the fish.\r\n\r\n"
            )
            return False
        if not session.logged_in:
            session.writer.write(
                b"Response: Error\r\n" + head + b"Message: Permission denied\r\n\r\n"
            )
            return True
        session.writer.write(
            b"Response: Error\r\n" + head + b"Message: Invalid/unknown command\r\n\r\n"
        )
        return True
