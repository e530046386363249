"""`AGIConnection`: the router's side of one FastAGI session, as bytes in and events out.

No sockets, no clocks, no tasks: the server feeds what it reads to `receive_data`, pulls
events with `next_event`, and writes what `send` returns. Every buffer is bounded: a header
block larger than ``max_header_bytes``, a line longer than ``max_line_bytes`` or a usage
block with more than ``max_usage_lines`` lines is a `RemoteProtocolError`, never a growing
buffer. See `fastagi_router.agi._state` for the state table this follows.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NoReturn

from fastagi_router.agi._state import State, check_transition
from fastagi_router.agi.commands import Command
from fastagi_router.agi.events import (
    ARG_LINE,
    ARG_NAME,
    HEADER_BLOCK,
    NEED_DATA,
    AGIRequest,
    ConnectionClosed,
    Event,
    HangupNotice,
    NeedData,
    Reply,
)
from fastagi_router.agi.replies import COMMON_REPLY_LINES, is_usage_start, parse_reply
from fastagi_router.errors import LocalProtocolError, RemoteProtocolError

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_LINE_BYTES = 16 * 1024
DEFAULT_MAX_USAGE_LINES = 256
_HANGUP = "HANGUP"


def decode(raw: bytes | bytearray) -> str:
    """Decode bytes from Asterisk as UTF-8, never raising: bad bytes become U+FFFD."""
    return raw.decode("utf-8", errors="replace")


class AGIConnection:
    """Tracks one FastAGI session from the server's side.

    Typical use::

        conn.receive_data(chunk)            # b"" when the peer closed
        while (event := conn.next_event()) is not NEED_DATA:
            ...                            # AGIRequest, Reply, HangupNotice, ConnectionClosed
        transport.write(conn.send(commands.set_variable("X", "1")))

    `receive` does the first two steps in one call, and reads the chunks nearly every
    session is made of without buffering them.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_usage_lines: int = DEFAULT_MAX_USAGE_LINES,
    ) -> None:
        self._max_header_bytes = max_header_bytes
        self._max_line_bytes = max_line_bytes
        self._max_usage_lines = max_usage_lines
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._eof = False
        self._closed_reported = False
        self._state = State.HEADERS
        self._headers: dict[str, str] = {}
        self._args: dict[int, str] = {}
        self._header_bytes = 0
        self._usage: list[str] = []
        self.request: AGIRequest | None = None
        self.outstanding: Command | None = None
        self.hung_up = False
        self.commands_sent = 0

    @property
    def state(self) -> State:
        """The current `State`."""
        return self._state

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet: at most one partial line once `next_event`
        has returned `NEED_DATA`."""
        return len(self._buffer)

    def _set_state(self, new: State) -> None:
        check_transition(self._state, new)
        self._state = new

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed (EOF).

        Raises `LocalProtocolError` if data arrives after EOF was reported.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("data received after EOF")
            return
        if not data:
            self._eof = True
            return
        if self._state in (State.CLOSED, State.ERROR):
            return  # nothing more will be read; drop it rather than buffer it
        self._buffer += data

    def receive(self, data: bytes) -> Event | NeedData:
        """`receive_data` (``data`` not empty) then `next_event`: the first event ``data``
        completes, or `NEED_DATA` (then there is no other). After an event, call
        `next_event` for more while `buffered` is not 0; once it is 0 there are none.

        The two chunks nearly every session is made of -- a whole header block, and one
        common reply line (``200 result=1``) to the command outstanding -- are read here
        without going through the buffer; every other chunk takes the general path, and
        either way the same bytes give the same events and leave the same state.
        """
        if not self._buffer and not self._eof:
            state = self._state
            if state is State.AWAITING:
                reply = COMMON_REPLY_LINES.get(data)
                if reply is not None:
                    self.outstanding = None
                    self._state = State.IDLE  # AWAITING -> IDLE, always legal
                    return reply
            elif state is State.HEADERS and not self._header_bytes and data.endswith(b"\n\n"):
                request = self._plain_block(data)
                if request is not None:
                    return request
        self.receive_data(data)
        return self.next_event()

    def _plain_block(self, data: bytes | bytearray) -> AGIRequest | None:
        """The request when ``data`` is exactly one header block of plain lines (what
        Asterisk writes), else None with nothing done: the line-by-line path then decides,
        and fails where it must (a CR, a line or a block over its limit)."""
        end = len(data) - 2
        if end > self._max_line_bytes or end + 2 > self._max_header_bytes or b"\r" in data:
            return None
        text = decode(data[:end])
        # Every line "name: value" with a plain name: so no empty line either, and the
        # ``\n\n`` at the end is the first one.
        if HEADER_BLOCK.fullmatch(text) is None:
            return None
        self._header_bytes = end + 2
        return self._plain_request(text)

    def _next_line(self) -> str | None:
        newline = self._buffer.find(b"\n", self._scanned)
        if newline < 0:
            self._scanned = len(self._buffer)
            if self._scanned > self._max_line_bytes:
                self._fail(f"line longer than {self._max_line_bytes} bytes")
            return None
        if newline > self._max_line_bytes:
            self._fail(f"line longer than {self._max_line_bytes} bytes")
        raw = self._buffer[:newline]
        del self._buffer[: newline + 1]
        self._scanned = 0
        if self._state is State.HEADERS:
            self._header_bytes += newline + 1
            if self._header_bytes > self._max_header_bytes:
                self._fail(f"header block larger than {self._max_header_bytes} bytes")
        if raw.endswith(b"\r"):
            del raw[-1:]
        return decode(raw)

    def _fail(self, reason: str) -> NoReturn:
        self._state = State.ERROR
        self._buffer.clear()
        raise RemoteProtocolError(reason)

    def next_event(self) -> Event | NeedData:
        """Return the next event, or `NEED_DATA` when more bytes are needed.

        Raises `RemoteProtocolError` when the peer broke the protocol; the connection is then
        in `State.ERROR` and yields only `ConnectionClosed` (at EOF) afterwards.
        """
        if self._state is State.ERROR:
            return self._closed_event() if self._eof else NEED_DATA
        if self._state is State.HEADERS:
            request = self._whole_header_block()
            if request is not None:
                return request
        while True:
            line = self._next_line() if self._state is not State.CLOSED else None
            if line is None:
                return self._closed_event() if self._eof else NEED_DATA
            event = self._handle_line(line)
            if event is not None:
                return event

    def _whole_header_block(self) -> AGIRequest | None:
        """Parse the header block in one pass when all of it is buffered (the usual case:
        Asterisk writes it at once) and its lines are plain; otherwise the line-by-line
        path reads it, so that a block is read the same whether it came whole or in
        pieces."""
        buffer = self._buffer
        end = buffer.find(b"\n\n")
        if end < 0 or self._header_bytes:
            return None
        request = self._plain_block(buffer[: end + 2])
        if request is not None:
            del buffer[: end + 2]
            self._scanned = 0
        return request

    def _plain_request(self, text: str) -> AGIRequest:
        """The request for ``text``, a block that matches `HEADER_BLOCK`. The agi_arg_N
        lines (Asterisk writes them last) are searched for from the first mention on; the
        request finds the other variables in the text when they are asked for."""
        first_arg = text.find("agi_arg_")
        if first_arg >= 0:
            for number, value in ARG_LINE.findall(text, first_arg):
                self._args[int(number)] = value
        return self._request(text)

    def _request(self, text: str | None = None) -> AGIRequest:
        """The header block is complete: build the request (from ``text`` when the block
        came whole); it is now the router's turn."""
        args = self._args
        values = tuple([args[n] for n in sorted(args)]) if args else ()
        if text is None:
            self.request = AGIRequest(MappingProxyType(self._headers), values)
        else:
            self.request = AGIRequest.from_block(text, values)
        self._state = State.IDLE  # HEADERS -> IDLE, always legal
        return self.request

    def _closed_event(self) -> ConnectionClosed | NeedData:
        if self._closed_reported:
            return NEED_DATA
        self._closed_reported = True
        previous = self._state
        self._state = State.CLOSED
        return ConnectionClosed(state=previous.value, unparsed=len(self._buffer))

    def _handle_line(self, line: str) -> Event | None:
        if self._state is State.HEADERS:
            return self._header_line(line)
        if line == _HANGUP:
            if self.hung_up:
                return None
            self.hung_up = True
            return HangupNotice()
        if self._state is State.USAGE:
            return self._usage_line(line)
        if self._state is State.AWAITING:
            if is_usage_start(line):
                self._set_state(State.USAGE)
                self._usage = [line]
                return None
            try:
                reply = parse_reply(line)
            except RemoteProtocolError as exc:
                self._fail(str(exc))
            if not reply.interim:
                self.outstanding = None
                self._state = State.IDLE  # AWAITING -> IDLE, always legal
            return reply
        # IDLE: nothing is outstanding, so nothing but HANGUP may arrive.
        self._fail(f"unsolicited line from the peer: {line[:80]!r}")

    def _header_line(self, line: str) -> AGIRequest | None:
        if line == "":
            return self._request()
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name:
            self._fail(f"not a header line: {line[:80]!r}")
        if value.startswith(" "):
            value = value[1:]
        arg = ARG_NAME.fullmatch(name) if name.startswith("agi_arg_") else None
        if arg is not None:
            self._args[int(arg.group(1))] = value
        else:
            self._headers[name] = value
        return None

    def _usage_line(self, line: str) -> Reply | None:
        self._usage.append(line)
        if len(self._usage) > self._max_usage_lines:
            self._fail(f"usage reply longer than {self._max_usage_lines} lines")
        if line.startswith("520 "):
            self.outstanding = None
            self._set_state(State.IDLE)
            return Reply(code=520, text="\n".join(self._usage))
        return None

    # -- output ----------------------------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Return the bytes for ``command`` and mark it outstanding.

        Raises `LocalProtocolError` unless it is our turn (the header block is in and no reply
        is awaited): sending during a prompt would interrupt it and lose its reply.
        """
        if self._state is not State.IDLE:
            raise LocalProtocolError(f"cannot send a command in state {self._state.value}")
        data = command.encode()
        self._state = State.AWAITING  # IDLE -> AWAITING, checked above
        self.outstanding = command
        self.commands_sent += 1
        return data

    def close(self) -> None:
        """Mark the session closed from our side; nothing more may be sent."""
        self._state = State.CLOSED
        self._buffer.clear()


__all__ = ["NEED_DATA", "AGIConnection", "decode"]
