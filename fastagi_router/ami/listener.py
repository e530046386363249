"""`ManagerListener`: a supervised Asterisk Manager connection that hands events over.

panoramisk's `Manager` speaks the protocol (actions and their responses, message parsing,
event dispatch); what it lacks for a server that must run for months is supplied here:

* it reconnects on a fixed delay, forever, from a timer nobody can cancel: here each
  connection is one `_Manager` whose own reconnection is switched off, and the listener
  reconnects with exponential backoff and jitter (`Backoff`), so a restarting Asterisk is
  not hammered and many routers do not reconnect in step;
* it sends Ping but never looks at the answer, so a link that died without a FIN (a
  firewall dropping state, a host gone) looks alive for ever: here every Ping must be
  answered within ``ami.ping_timeout_ms`` or the link is dropped and reopened;
* a refused login only sets a flag, and it keeps reconnecting every two seconds with the
  same wrong secret (which fail2ban reads as an attack): here a refused login is logged as
  an error naming the user, reported as `ManagerState.AUTH_FAILED`, and retried only at
  the longest backoff, in case manager.conf is fixed meanwhile;
* it buffers an unterminated message without limit, decodes each TCP read on its own (a
  UTF-8 character split across two reads is lost), and parses a whole read, hundreds of
  events, in one callback: `_Protocol` frames messages itself, bounds them at
  `MAX_MESSAGE_BYTES`, decodes incrementally, dismisses unread events unparsed and works
  through a burst a slice per loop iteration.

Nothing here blocks: the connection lives in one task on the event loop the FastAGI server
uses, events are handed to ``on_event`` synchronously (it must be quick; learning only
queues a write), and a Manager that is down, slow or lying only changes `status`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from fastagi_router.config import AMISettings
from fastagi_router.errors import ManagerAuthError, ManagerError
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics

log = logging.getLogger("fastagi_router.ami")

#: The longest Manager message accepted; Asterisk's own are a few KiB.
MAX_MESSAGE_BYTES = 1024 * 1024
#: Received text handled per event-loop iteration (a few dozen events, well under 1 ms).
SLICE_CHARS = 16 * 1024
_END = "\r\n\r\n"
#: The event classes requested at login: calls (Dial*, Hangup) and queues (Agent*).
#: manager.conf must let the user read them: ``read = call,agent``.
EVENT_MASK = "call,agent"

EventHandler = Callable[[Mapping[str, Any]], None]
Sleep = Callable[[float], Awaitable[None]]


class ManagerState(enum.StrEnum):
    """Where the Manager connection stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"  # logged in, events flowing
    DISCONNECTED = "disconnected"  # waiting to reconnect after a failure
    AUTH_FAILED = "auth_failed"  # login refused; retried at the longest backoff
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ManagerStatus:
    """A snapshot of the connection, for health checks and logs.

    ``since`` and ``last_event_at`` are POSIX times (0 when never); ``error`` says why the
    last connection ended or failed; ``logins`` counts successful logins since start;
    ``retry_in`` is the delay before the next attempt while disconnected.
    """

    state: ManagerState = ManagerState.STOPPED
    since: float = 0.0
    error: str = ""
    logins: int = 0
    version: str = ""
    last_event_at: float = 0.0
    retry_in: float = 0.0


class Backoff:
    """Exponential backoff with jitter: ``initial`` doubling up to ``maximum``, each delay
    drawn uniformly between half and all of its value (so routers restarted together do
    not reconnect in step, and never sooner than half the nominal delay)."""

    def __init__(
        self, initial: float, maximum: float, rand: Callable[[], float] = random.random
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rand = rand
        self._attempts = 0

    def next(self) -> float:
        """Return the delay before the next attempt, and count the attempt."""
        nominal = min(self.maximum, self.initial * 2.0 ** min(self._attempts, 32))
        self._attempts += 1
        return nominal * (0.5 + self._rand() / 2)

    def longest(self) -> float:
        """Return the longest delay, jittered the same way (after a refused login)."""
        return self.maximum * (0.5 + self._rand() / 2)

    def reset(self) -> None:
        """Start again from ``initial`` (after a connection proved good)."""
        self._attempts = 0


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, framed here: bounded messages, UTF-8 decoded across reads,
    events nobody reads dismissed unparsed, and the rest handled in slices.

    A read can bring 256 KiB, several hundred events; parsed in one go that is tens of
    milliseconds during which no FastAGI call moves. Slices of `SLICE_CHARS` are framed one
    per loop iteration instead, reading paused until the backlog is gone (so it never
    exceeds one read). Events whose name is not in the manager's ``wanted`` set are counted
    and dropped on their first line; panoramisk parses only the others and the responses.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._unread = ""
        self._partial = ""
        self._scheduled = False

    def data_received(self, data: bytes) -> None:
        self._unread += self._decoder.decode(data)
        if not self._scheduled:
            self._feed()

    def _feed(self) -> None:
        self._scheduled = False
        piece, self._unread = self._unread[:SLICE_CHARS], self._unread[SLICE_CHARS:]
        *messages, self._partial = (self._partial + piece).split(_END)
        if len(self._partial) > MAX_MESSAGE_BYTES:
            if self.factory is not None:
                self.factory.note_lost(f"a message longer than {MAX_MESSAGE_BYTES} bytes")
            self._unread = self._partial = ""
            self.transport.abort()
            return
        wanted: frozenset[str] | None = getattr(self.factory, "wanted", None)
        kept = []
        events = 0
        for message in messages:
            body = message.lstrip("\r\n")
            if body.startswith("Event: "):
                events += 1
                end = body.find("\r\n")
                if wanted is not None and body[7 : end if end >= 0 else None] not in wanted:
                    continue
            kept.append(message)
        if events and self.factory is not None:
            self.factory.received(events)
        if kept:
            super().data_received((_END.join(kept) + _END).encode("utf-8"))
        if self._unread:
            self.transport.pause_reading()
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._feed)
        elif not self.transport.is_closing():
            self.transport.resume_reading()


class _Manager(Manager):  # type: ignore[misc]
    """One Manager connection with panoramisk's reconnection and pinger switched off.

    ``lost`` resolves, with the reason, when the connection ends; the listener decides
    what happens next.
    """

    def __init__(
        self,
        *,
        wanted: frozenset[str] | None = None,
        received: Callable[[int], None] = lambda count: None,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        self.lost: asyncio.Future[str] = config["loop"].create_future()
        #: Event names handed over (None: all); the protocol dismisses the others unparsed.
        self.wanted = wanted
        #: Called with the number of events in each slice received, wanted or not.
        self.received = received

    def connection_made(self, future: asyncio.Future[Any]) -> None:
        # On failure panoramisk schedules a reconnection; the listener awaits the same
        # future and handles the failure itself.
        if future.cancelled() or future.exception() is not None:
            return
        super().connection_made(future)

    def connection_lost(self, exc: Any) -> None:
        # Replaces panoramisk's, which schedules a reconnection after a fixed delay.
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        if isinstance(exc, Exception):
            self.note_lost(str(exc) or type(exc).__name__)
        elif exc is not None and str(getattr(exc, "event", "")).lower() == "shutdown":
            restart = getattr(exc, "restart", "")
            self.note_lost(f"Asterisk is shutting down (Restart: {restart or '?'})")
        else:
            self.note_lost("Asterisk closed the connection")

    def ping(self) -> None:
        """Does nothing: the listener pings, and checks the answers."""

    def note_lost(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)


class ManagerListener:
    """Keeps one logged-in Manager connection and hands events to ``on_event``.

    ``events`` names the events to hand over (None: every one); the others are counted and
    dropped before they are parsed. ``sleep`` and ``rand`` drive the backoff; tests pass
    their own to check the delays without waiting them.
    """

    def __init__(
        self,
        settings: AMISettings,
        on_event: EventHandler,
        metrics: Metrics,
        *,
        events: Collection[str] | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.events = frozenset(events) if events is not None else None
        self.metrics = metrics
        self.backoff = Backoff(
            settings.backoff_initial_ms / 1000, settings.backoff_max_ms / 1000, rand
        )
        self._sleep = sleep
        self._status = ManagerStatus()
        self._last_event_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._address = f"{settings.host}:{settings.port}"
        metrics.states(
            "ami_connection_state",
            "state",
            [str(state) for state in ManagerState],
            lambda: str(self._status.state),
            "Asterisk Manager connection: 1 for its state (connected: logged in, events "
            "flowing; auth_failed: the login is refused)",
        )
        metrics.describe("ami_logins_total", "counter", "Manager logins by outcome")
        metrics.describe("ami_disconnects_total", "counter", "Manager connections ended, by cause")
        metrics.describe("ami_events_total", "counter", "Manager events received")

    @property
    def status(self) -> ManagerStatus:
        """The connection's state now."""
        return replace(self._status, last_event_at=self._last_event_at)

    def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ami-listener")

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set(ManagerState.STOPPED)

    # -- supervision -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._set(ManagerState.CONNECTING)
            try:
                await self._session()
            except ManagerAuthError as exc:
                delay = self.backoff.longest()
                self.metrics.inc("ami_logins_total", outcome="refused")
                log.error(
                    "Asterisk Manager %s refused the login of %r: %s; check ami.username, "
                    "ami.secret and manager.conf; retrying in %.1f s",
                    self._address,
                    self.settings.username,
                    exc,
                    delay,
                )
                self._set(ManagerState.AUTH_FAILED, error=str(exc), retry_in=delay)
            except ManagerError as exc:
                delay = self.backoff.next()
                log.warning(
                    "Asterisk Manager %s: %s; reconnecting in %.1f s", self._address, exc, delay
                )
                self._set(ManagerState.DISCONNECTED, error=str(exc), retry_in=delay)
            except Exception as exc:
                # A bug here (or in panoramisk) must not end learning for the life of the
                # process: log it with its traceback and reconnect like after any failure.
                delay = self.backoff.next()
                log.exception("Asterisk Manager %s: unexpected error", self._address)
                self.metrics.inc("ami_disconnects_total", cause="error")
                self._set(ManagerState.DISCONNECTED, error=repr(exc), retry_in=delay)
            await self._sleep(delay)

    async def _session(self) -> None:
        """One connection: connect, log in, watch. Returns never; raises `ManagerError`."""
        loop = asyncio.get_running_loop()
        manager = _Manager(
            loop=loop,
            host=self.settings.host,
            port=self.settings.port,
            protocol_factory=_Protocol,
            encoding="utf-8",
            wanted=self.events,
            received=self._received,
        )
        manager.register_event("*", self._dispatch)
        timeout = self.settings.connect_timeout_ms / 1000
        try:
            try:
                async with asyncio.timeout(timeout):
                    await manager.connect()
            except (OSError, TimeoutError) as exc:
                self.metrics.inc("ami_disconnects_total", cause="connect_failed")
                raise ManagerError(f"cannot connect: {exc or 'timed out'}") from exc
            reply = await self._action(
                manager,
                {
                    "Action": "Login",
                    "Username": self.settings.username,
                    "Secret": self.settings.secret,
                    "Events": EVENT_MASK,
                },
                timeout,
                "Login",
            )
            if not reply.success:
                raise ManagerAuthError(str(reply.message or reply.response or "no reason given"))
            self.metrics.inc("ami_logins_total", outcome="ok")
            version = str(manager.protocol.version or "")
            self._set(
                ManagerState.CONNECTED, logins=self._status.logins + 1, version=version, error=""
            )
            log.info(
                "Asterisk Manager %s: logged in as %r (protocol %s)",
                self._address,
                self.settings.username,
                version or "unknown",
            )
            await self._watch(manager)
        finally:
            manager.close()

    async def _watch(self, manager: _Manager) -> None:
        """Ping every interval; raise `ManagerError` when the link is lost or goes silent."""
        interval = self.settings.ping_interval_ms / 1000
        patience = self.settings.ping_timeout_ms / 1000
        while True:
            await asyncio.wait({manager.lost}, timeout=interval)
            if manager.lost.done():
                self.metrics.inc("ami_disconnects_total", cause="lost")
                raise ManagerError(f"connection lost: {manager.lost.result()}")
            await self._action(manager, {"Action": "Ping"}, patience, "Ping")
            # A session that answered a ping proves the link; the next failure starts the
            # backoff from the beginning.
            self.backoff.reset()

    async def _action(
        self, manager: _Manager, action: dict[str, str], timeout: float, what: str
    ) -> Any:
        """Send ``action``; return its response. Raises `ManagerError` when the connection
        ends first or no response comes within ``timeout`` seconds."""
        future = manager.send_action(action)
        await asyncio.wait(
            {future, manager.lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if future.done():
            return future.result()
        future.cancel()
        if manager.lost.done():
            self.metrics.inc("ami_disconnects_total", cause="lost")
            raise ManagerError(f"connection lost during {what}: {manager.lost.result()}")
        self.metrics.inc("ami_disconnects_total", cause=f"{what.lower()}_timeout")
        raise ManagerError(f"no answer to {what} within {timeout:g} s; dropping the link")

    def _received(self, count: int) -> None:
        self.metrics.inc("ami_events_total", count)
        self._last_event_at = time.time()

    def _dispatch(self, manager: _Manager, message: Any) -> None:
        try:
            self.on_event(message)
        except Exception:
            # One event the handler chokes on must not end the connection.
            log.exception("Asterisk Manager: failed to handle %s", sanitize(message.get("Event")))

    def _set(self, state: ManagerState, **changes: Any) -> None:
        if state is not self._status.state:
            changes["since"] = time.time()
        if state is not ManagerState.DISCONNECTED and state is not ManagerState.AUTH_FAILED:
            changes.setdefault("retry_in", 0.0)
        self._status = replace(self._status, state=state, **changes)
