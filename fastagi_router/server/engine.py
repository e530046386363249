"""`AGIServer`: the asyncio engine around the sans-IO protocol.

The engine owns everything that is about connections, not about routing: the allowlist,
the session limit, the header timeout, the per-call deadline, dispatch on the script name,
and the guarantee that every call that is still there when the handler is done -- or
failed, or ran out of time, or was never started because of overload -- gets an answer
before the socket closes. What the answer says is the policy's business: handlers return
the variables to set, and ``fallback(request, reason)`` gives the variables for a failure.

Asterisk records a silent close as AGISTATUS=SUCCESS, so the only sessions that end without
an answer are those where the caller hung up, the peer closed first, the peer was refused,
or the peer never sent a complete header block.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import ipaddress
import logging
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter

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
)
from fastagi_router.config import Settings, parse_hostport
from fastagi_router.errors import CallEnded, ProtocolError, RemoteProtocolError
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import ROUND_TRIP_BUCKETS, Histogram, Metrics
from fastagi_router.server.calllog import Answer, CallLog
from fastagi_router.server.calllog import log as calls_log
from fastagi_router.server.session import Deadline, Session

log = logging.getLogger("fastagi_router.server")

Variables = list[tuple[str, str]]
Handler = Callable[[Session], Awaitable[Answer]]
#: A handler's synchronous fast path: the answer when it needs no waiting, else None.
FastHandler = Callable[[AGIRequest], Answer | None]
Fallback = Callable[[AGIRequest, str], Answer]

#: Sessions over the limit still get a FALLBACK answer (one round trip, no task), up to
#: this many times the limit at once; past that they are closed at once (Asterisk then
#: reads AGISTATUS=FAILURE and the dialplan uses the default queue).
_OVERLOAD_FACTOR = 4
#: A refused address is logged once, then at most once per this many seconds with a count.
_REFUSED_LOG_EVERY = 60.0
_REFUSED_LOG_ADDRESSES = 1024


class _AGIProtocol(asyncio.Protocol):
    """One FastAGI connection: feeds bytes to `AGIConnection`, runs the call as a task."""

    def __init__(self, server: AGIServer) -> None:
        self._server = server
        self._conn = AGIConnection(max_header_bytes=server.settings.agi.max_header_bytes)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Reply] | None = None
        self._task: asyncio.Task[None] | None = None
        # The fast path: the answer's commands still to send, and what they set.
        self._queue: list[Command] | None = None
        self._sent: Command | None = None
        self._variables: Variables = []
        self._round_trips = 0
        # For the metrics and the call log: the request, its answer, and when (perf_counter)
        # the header block was complete and the answer known.
        self._request: AGIRequest | None = None
        self._answer: Answer | None = None
        self._started = 0.0
        self._decided = 0.0
        self._overloaded = False
        self._counted = False
        self._ended_by_peer = False
        self.hung_up = False
        self.peer = "?"

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has its methods.
        self._transport = typing.cast(asyncio.Transport, transport)
        server = self._server
        peername = self._transport.get_extra_info("peername")
        host = peername[0] if isinstance(peername, tuple) else ""
        self.peer = host
        if not server.allowed(host):
            server.count_refused["allowlist"](1.0)
            server.log_refused(host)
            self._transport.abort()
            return
        if server.active >= server.settings.agi.max_sessions:
            if server.overloaded >= server.settings.agi.max_sessions * _OVERLOAD_FACTOR:
                server.count_refused["shed"](1.0)
                server.call_log.session("shed", host)
                self._transport.abort()
                return
            self._overloaded = True
            server.overloaded += 1
        else:
            server.active += 1
        self._counted = True
        server.connections.add(self)
        # Both asyncio's loop and uvloop set TCP_NODELAY on TCP transports already.
        server.watch(self, server.header_timeout)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        try:
            event = conn.receive(data)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        except ProtocolError:
            return
        # Nothing left in the buffer (the usual case): no other event can be there.
        if event is not NEED_DATA and self._handle(event) and conn.buffered:
            self._pump()

    def eof_received(self) -> bool:
        self._conn.receive_data(b"")
        self._pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.watched.pop(self, None)
        if self._conn.state is not State.CLOSED:
            self._conn.receive_data(b"")
            self._pump()
        self._peer_gone()
        if self._counted:
            self._counted = False
            if self._overloaded:
                self._server.overloaded -= 1
            else:
                self._server.active -= 1
            self._server.connections.discard(self)
            if not self._server.connections:
                self._server.idle.set()

    # -- events ----------------------------------------------------------------------------

    def _pump(self) -> None:
        while True:
            try:
                event = self._conn.next_event()
            except RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            if event is NEED_DATA or not self._handle(event):
                return

    def _handle(self, event: Event) -> bool:
        """Act on one event; False when no event can follow it."""
        if isinstance(event, Reply):
            if event.interim:
                return True
            if self._queue is not None:
                self._next_answer(event)
            elif self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(event)
        elif isinstance(event, AGIRequest):
            self._start(event)
        elif isinstance(event, HangupNotice):
            self._hangup()
        elif isinstance(event, ConnectionClosed):
            self._peer_gone()
            if event.state == State.HEADERS.value:
                self._close()
            return False
        return True

    def _start(self, request: AGIRequest) -> None:
        self._started = perf_counter()
        self._request = request
        server = self._server
        server.watched.pop(self, None)
        script = request.script or server.default_script
        if self._overloaded or script not in server.handlers:
            # Answered at once, with no task: the cheaper an excess call, the less it takes
            # from the calls the router did accept.
            reason = "overload" if self._overloaded else "unknown_script"
            if reason == "overload":
                server.count_refused["overload"](1.0)
            self._answer_now(self._decided_now(server.fallback(request, reason)))
            return
        fast = server.fast_handlers.get(script)
        if fast is not None:
            try:
                answer = fast(request)
                if answer is not None:
                    answer.commands()  # a value no command can carry fails here, not below
            except Exception:
                log.exception("[%s] fast path failed", sanitize(request.uniqueid))
                answer = None  # the task below decides again, and answers in any case
            if answer is not None:
                self._answer_now(self._decided_now(answer))
                return
        self._task = asyncio.get_running_loop().create_task(self._run(request))

    def _decided_now(self, answer: Answer) -> Answer:
        """Count ``answer`` and time its decision: list updates, no calls (a hot path)."""
        server = self._server
        series = server.decisions.get((answer.status, answer.reason, answer.source))
        if series is None:
            series = server.decision_series(answer)
        now = perf_counter()
        series[0][0] += 1.0
        histogram, elapsed = series[1], now - self._started
        histogram.counts[bisect.bisect_left(histogram.bounds, elapsed)] += 1
        histogram.total += elapsed
        self._answer = answer
        self._decided = now
        return answer

    # -- the fast path: an answer decided without waiting, sent without a task ------------

    def _answer_now(self, answer: Answer) -> None:
        self._variables = answer.variables
        self._queue = list(answer.commands())
        self._server.watch(self, self._server.answer_timeout)
        self._send_next()

    def _send_next(self) -> None:
        assert self._queue is not None and self._transport is not None
        if not self._queue:
            self._finish_fast("answered")
            return
        command = self._sent = self._queue.pop(0)
        self._round_trips += 1
        self._transport.write(self._conn.send(command))

    def _next_answer(self, reply: Reply) -> None:
        assert self._sent is not None
        again = commands.without_mset(self._sent, reply.result, self._variables)
        if again is not None:
            self._queue = again
        self._send_next()

    def _finish_fast(self, outcome: str) -> None:
        if self._queue is None:
            return
        self._queue = None
        server = self._server
        server.watched.pop(self, None)
        self._ended(outcome, self._round_trips)
        self._conn.close()
        self._close()

    def _ended(self, outcome: str, round_trips: int) -> None:
        server = self._server
        server.count_session(outcome)
        trips = server.round_trips
        trips.counts[bisect.bisect_left(trips.bounds, round_trips)] += 1
        trips.total += round_trips
        # WARNING, not INFO: overload lines are written even with the per-call lines off.
        if self._request is not None and calls_log.isEnabledFor(logging.WARNING):
            server.call_log.call(
                self._request,
                self._answer,
                outcome,
                round_trips,
                started=self._started,
                decided=self._decided,
            )

    def _hangup(self) -> None:
        self.hung_up = True
        # Nothing in flight: the handler is thinking; stop it now. Otherwise the reply that
        # is coming is read first and the handler learns of the hang-up from `command`.
        if self._waiter is None and self._task is not None and not self._task.done():
            self._ended_by_peer = True
            self._task.cancel()

    def _peer_gone(self) -> None:
        self.hung_up = True
        if self._queue is not None:
            self._finish_fast("hangup")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(CallEnded("Asterisk closed the session"))
        elif self._task is not None and not self._task.done():
            self._ended_by_peer = True
            self._task.cancel()

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self._server.count_protocol_error(1.0)
        log.warning("FastAGI protocol error from %s: %s", sanitize(self.peer), sanitize(exc))
        if self._queue is not None:
            self._finish_fast("protocol_error")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        elif self._task is None:
            self._close()

    def expired(self) -> None:
        """Called by the server when this connection's watch ran out: no header block in
        time, or no reply to a fast-path answer in time."""
        if self._queue is not None:
            log.warning("closing a FastAGI session: no reply to the answer in time")
            self._finish_fast("no_reply")
        elif self._conn.request is None:
            self._server.count_session("header_timeout")
            self._server.call_log.session("header_timeout", self.peer)
            self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- the Channel interface used by Session ---------------------------------------------

    async def exchange(self, command: Command, timeout: float | None) -> Reply:
        assert self._transport is not None
        if self._transport.is_closing() or self._conn.state in (State.CLOSED, State.ERROR):
            raise CallEnded("the session is closed")
        data = self._conn.send(command)
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(data)
        try:
            if timeout is None:
                return await waiter
            try:
                async with asyncio.timeout(timeout):
                    return await waiter
            except TimeoutError:
                self._server.metrics.inc("prompt_overruns_total")
                raise CallEnded(
                    f"no reply to {command.verb} within {timeout:g} s; Asterisk is not answering"
                ) from None
        finally:
            self._waiter = None

    async def _await_outstanding(self, grace: float) -> bool:
        """Wait for the reply to a command still in flight; False if none came in time."""
        if self._conn.state not in (State.AWAITING, State.USAGE):
            return True
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            async with asyncio.timeout(grace):
                await waiter
        except (TimeoutError, CallEnded, RemoteProtocolError):
            return False
        finally:
            self._waiter = None
        return True

    # -- the call --------------------------------------------------------------------------

    async def _run(self, request: AGIRequest) -> None:
        server = self._server
        session = Session(
            self, request, prompt_timeout=server.settings.agi.prompt_timeout_ms / 1000
        )
        outcome = "answered"
        try:
            answer = await self._decide(session)
            if answer is None:
                outcome = "hangup"
                return
            variables = answer.variables
            if not await self._await_outstanding(server.settings.agi.reply_grace_ms / 1000):
                outcome = "no_reply"
                return
            async with asyncio.timeout(server.settings.agi.reply_grace_ms / 1000 * 2):
                await session.set_variables(variables)
        except CallEnded:
            outcome = "hangup"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._ended_by_peer or task is None:
                raise
            task.uncancel()
            outcome = "hangup"
        except RemoteProtocolError:
            # The peer broke the protocol during the call (already logged and counted by
            # `_protocol_error`): nothing more can be read or sent on this session.
            outcome = "protocol_error"
        except (TimeoutError, ProtocolError) as exc:
            outcome = "no_reply" if isinstance(exc, TimeoutError) else "protocol_error"
            log.warning(
                "[%s] could not deliver the answer: %s",
                sanitize(session.uniqueid),
                sanitize(exc) or type(exc).__name__,
            )
        finally:
            self._ended(outcome, session.round_trips)
            self._close()

    async def _decide(self, session: Session) -> Answer | None:
        """Run the handler under the deadline; return the answer, or None on hang-up."""
        server = self._server
        handler = server.handlers[session.request.script or server.default_script]
        reason: str
        deadline = Deadline(server.settings.deadline_ms / 1000)
        try:
            async with deadline:
                session.deadline = deadline
                answer = await handler(session)
            # A value no command can carry is the handler's error: FALLBACK, not silence.
            answer.commands()
            return self._decided_now(answer)
        except CallEnded:
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._ended_by_peer and task is not None:
                task.uncancel()
                return None
            raise
        except RemoteProtocolError:
            raise  # the peer's fault, not the handler's: no FALLBACK can be sent anyway
        except TimeoutError:
            if not deadline.expired():
                log.exception("[%s] handler failed", sanitize(session.uniqueid))
                reason = "error"
            else:
                log.warning(
                    "[%s] deadline of %d ms expired",
                    sanitize(session.uniqueid),
                    server.settings.deadline_ms,
                )
                reason = "timeout"
        except Exception:
            log.exception("[%s] handler failed", sanitize(session.uniqueid))
            reason = "error"
        if session.hung_up:
            return None
        return self._decided_now(server.fallback(session.request, reason))


class AGIServer:
    """Accepts FastAGI connections and runs one handler per call.

    ``handlers`` maps script names (the path of ``agi://host/route?...``) to handlers; a
    request without a script runs ``default_script``. ``fast_handlers`` may give a script a
    synchronous first try: when it returns an answer, it is sent straight from the protocol
    callbacks, with no task, future or timeout object per call.

    The server counts every call by its answer's status, reason and source, times the
    decision (header block complete to answer known) by source, counts sessions by how
    they ended and round trips per call, and writes the per-call log line (`CallLog`).
    """

    def __init__(
        self,
        settings: Settings,
        handlers: Mapping[str, Handler],
        fallback: Fallback,
        metrics: Metrics,
        *,
        default_script: str = "route",
        fast_handlers: Mapping[str, FastHandler] | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = dict(handlers)
        self.fast_handlers = dict(fast_handlers or {})
        self.fallback = fallback
        self.metrics = metrics
        self.default_script = default_script
        self.active = 0
        self.overloaded = 0
        self.connections: set[_AGIProtocol] = set()
        self.idle = asyncio.Event()
        #: Connections waiting for their header block, or for the reply to a fast-path answer,
        #: with the loop time their wait expires.
        self.watched: dict[_AGIProtocol, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        #: The loop the server runs on, known from the first `watch`.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._refused: dict[str, tuple[float, int]] = {}
        self.call_log = CallLog(settings.log.caller)
        self.apply(settings)
        metrics.gauge("sessions_active", lambda: float(self.active), "FastAGI sessions in progress")
        metrics.gauge(
            "sessions_overloaded",
            lambda: float(self.overloaded),
            "Sessions over agi.max_sessions being answered FALLBACK (overload)",
        )
        metrics.describe("sessions_total", "counter", "FastAGI sessions by how they ended")
        metrics.describe(
            "sessions_refused_total",
            "counter",
            "Connections refused: allowlist (not in agi.allow), overload (answered FALLBACK "
            "at once), shed (closed unanswered, far over the limit)",
        )
        self.count_refused = {
            reason: metrics.counter("sessions_refused_total", reason=reason)
            for reason in ("allowlist", "overload", "shed")
        }
        metrics.describe("protocol_errors_total", "counter", "FastAGI protocol errors by peers")
        metrics.describe(
            "prompt_overruns_total", "counter", "Prompts Asterisk did not answer in time"
        )
        self.count_protocol_error = metrics.counter("protocol_errors_total")
        metrics.describe(
            "call_round_trips", "histogram", "Round trips with Asterisk per FastAGI session"
        )
        self.round_trips: Histogram = metrics.histogram_series(
            "call_round_trips", ROUND_TRIP_BUCKETS
        )
        #: sessions_total's cells by outcome.
        self.sessions = {"answered": metrics.cell("sessions_total", outcome="answered")}
        metrics.describe("calls_total", "counter", "Calls answered, by status, reason and source")
        metrics.describe(
            "decision_duration_seconds",
            "histogram",
            "Time from the header block to the answer decided, by source",
        )
        #: By (status, reason, source): calls_total's cell and the decision histogram.
        self.decisions: dict[tuple[str, str, str], tuple[list[float], Histogram]] = {}

    def apply(self, settings: Settings) -> None:
        """Use ``settings`` from now on (at start-up, and on a reload): limits, timeouts and
        the allowlist apply to the next connection; calls in progress keep their deadline."""
        self.settings = settings
        self.call_log.flush()  # its lines, before the next ones
        self.call_log = CallLog(settings.log.caller)
        self._networks = settings.agi.networks
        self.header_timeout = settings.agi.header_timeout_ms / 1000
        self.answer_timeout = settings.agi.reply_grace_ms / 1000 * 2
        self._sweep_interval = min(0.25, self.header_timeout / 4, self.answer_timeout / 4)
        self.allowed = functools.lru_cache(maxsize=4096)(self._allowed)

    def decision_series(self, answer: Answer) -> tuple[list[float], Histogram]:
        """Return (and keep in `decisions`) the calls_total cell and the decision histogram
        for ``answer``'s status, reason and source."""
        series = (
            self.metrics.cell(
                "calls_total", status=answer.status, reason=answer.reason, source=answer.source
            ),
            self.metrics.histogram_series("decision_duration_seconds", source=answer.source),
        )
        self.decisions[(answer.status, answer.reason, answer.source)] = series
        return series

    def count_session(self, outcome: str) -> None:
        """Count one session in ``sessions_total`` by how it ended."""
        cell = self.sessions.get(outcome)
        if cell is None:
            cell = self.sessions[outcome] = self.metrics.cell("sessions_total", outcome=outcome)
        cell[0] += 1.0

    def watch(self, connection: _AGIProtocol, seconds: float) -> None:
        """Call ``connection.expired()`` unless it is unwatched within ``seconds``.

        One timer sweeps every watched connection, rather than a timer per connection and
        per wait: almost every header block arrives in the first packet and almost every
        reply in a fraction of a millisecond.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self.watched[connection] = loop.time() + seconds
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for connection, expiry in list(self.watched.items()):
            if expiry <= now:
                del self.watched[connection]
                connection.expired()
        if self.watched:
            self._sweeper = asyncio.get_running_loop().call_later(self._sweep_interval, self._sweep)

    def log_refused(self, host: str) -> None:
        """Log a connection refused by ``agi.allow``: the first from an address, then at most
        one line a minute per address saying how many more there were. Anyone who can reach
        the port can open connections; they must not be able to fill the log."""
        now = time.monotonic()
        last, since = self._refused.get(host, (-_REFUSED_LOG_EVERY, 0))
        if now - last < _REFUSED_LOG_EVERY:
            self._refused[host] = (last, since + 1)
            return
        if len(self._refused) >= _REFUSED_LOG_ADDRESSES:
            self._refused.clear()  # bounded; at worst an address is logged once more
        self._refused[host] = (now, 0)
        more = f"; {since} more since the last report" if since else ""
        log.warning("refused FastAGI connection from %s (not in agi.allow)%s", sanitize(host), more)

    def _allowed(self, host: str) -> bool:
        """True when ``host`` is inside one of the allowed networks (cached per address)."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    async def start(self, sock: socket.socket | None = None) -> None:
        """Start listening on ``agi.listen`` (or on ``sock`` when given)."""
        loop = asyncio.get_running_loop()
        backlog = self.settings.agi.backlog
        if sock is not None:
            self._server = await loop.create_server(
                lambda: _AGIProtocol(self), sock=sock, backlog=backlog
            )
        else:
            host, port = parse_hostport(self.settings.agi.listen, "agi.listen")
            self._server = await loop.create_server(
                lambda: _AGIProtocol(self), host, port, backlog=backlog, reuse_address=True
            )
        log.info("FastAGI listening on %s", ", ".join(self.addresses()))

    def addresses(self) -> list[str]:
        """Return the ``host:port`` addresses actually bound."""
        if self._server is None:
            return []
        return [f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in self._server.sockets]

    @property
    def port(self) -> int:
        """The first bound port (useful when listening on port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let calls in progress finish (up to ``grace`` seconds), then close."""
        if self._server is not None:
            self._server.close()
        if grace is None:
            grace = self.settings.deadline_ms / 1000 + self.settings.agi.reply_grace_ms / 1000 * 3
        if self.connections:
            self.idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    while self.connections:
                        await self.idle.wait()
                        self.idle.clear()
        for connection in list(self.connections):
            connection._close()
        if self._server is not None:
            await self._server.wait_closed()
        self.call_log.flush()
