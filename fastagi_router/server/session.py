"""`Session`: what a call handler sees of one FastAGI call, and its router-time `Deadline`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Protocol

from fastagi_router.agi import AGIRequest, Command, Reply, commands
from fastagi_router.errors import CallEnded

log = logging.getLogger("fastagi_router.session")


class Deadline:
    """The router-time budget of one call, as an ``asyncio.timeout`` that can pause.

    While the channel has the turn (a prompt plays, the caller types, the channel is being
    answered) the clock stops: that time is the caller's, and nothing could be sent to cut it
    short anyway. When the budget runs out the handler's task gets `TimeoutError`.
    """

    def __init__(self, seconds: float) -> None:
        self._budget = seconds
        self._remaining = seconds
        self._timeout: asyncio.Timeout | None = None
        self._paused = False

    async def __aenter__(self) -> Deadline:
        self._timeout = asyncio.timeout(self._budget)
        await self._timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._timeout is not None
        await self._timeout.__aexit__(exc_type, exc, tb)

    def pause(self) -> None:
        """Stop the clock, keeping what is left of the budget."""
        if self._timeout is None or self._paused:
            return
        when = self._timeout.when()
        loop = asyncio.get_running_loop()
        self._remaining = (when - loop.time()) if when is not None else self._remaining
        self._timeout.reschedule(None)
        self._paused = True

    def resume(self) -> None:
        """Restart the clock with what was left when it was paused."""
        if self._timeout is None or not self._paused:
            return
        self._timeout.reschedule(asyncio.get_running_loop().time() + max(self._remaining, 0.0))
        self._paused = False

    def remaining(self) -> float | None:
        """Return the seconds left of the budget (frozen while paused), or None before it runs.

        Work that can give up early (an upstream lookup) sizes its own wait from this, so
        that the call still has time to answer with what it has.
        """
        if self._timeout is None:
            return None
        if self._paused:
            return max(self._remaining, 0.0)
        when = self._timeout.when()
        if when is None:
            return None
        return max(when - asyncio.get_running_loop().time(), 0.0)

    def expired(self) -> bool:
        """True once the budget ran out."""
        return self._timeout is not None and self._timeout.expired()


class Channel(Protocol):
    """The engine's side of a session: sends one command and waits for its reply."""

    hung_up: bool

    async def exchange(self, command: Command, timeout: float | None) -> Reply:
        """Send ``command``; return its final reply. Raise `CallEnded` if the peer closed."""
        ...


class Session:
    """One call as a handler sees it: the request, its parameters, and `command`.

    `command` sends one command and returns its reply; it raises `CallEnded` once the
    caller has hung up (after reading the reply of the command in flight, so the socket never
    closes on unread bytes).
    """

    def __init__(self, channel: Channel, request: AGIRequest, *, prompt_timeout: float) -> None:
        self.request = request
        self._params: Mapping[str, str] | None = None
        self.uniqueid = request.uniqueid
        self.round_trips = 0
        self.deadline: Deadline | None = None
        self._channel = channel
        self._prompt_timeout = prompt_timeout

    @property
    def params(self) -> Mapping[str, str]:
        """The call's parameters: ``key=value`` AGI arguments and the URL's query string."""
        if self._params is None:
            self._params = self.request.parameters()
        return self._params

    @property
    def hung_up(self) -> bool:
        """True once Asterisk said ``HANGUP`` or closed the session."""
        return self._channel.hung_up

    async def command(self, command: Command) -> Reply:
        """Send ``command`` and return its reply.

        Commands that wait on the channel pause the deadline and are bounded by the prompt
        timeout instead. Raises `CallEnded` when the caller hung up or Asterisk went away.
        """
        if self._channel.hung_up:
            raise CallEnded("the caller hung up")
        self.round_trips += 1
        if command.channel_time and self.deadline is not None:
            self.deadline.pause()
            try:
                reply = await self._channel.exchange(command, self._prompt_timeout)
            finally:
                self.deadline.resume()
        else:
            reply = await self._channel.exchange(command, None)
        if self._channel.hung_up:
            raise CallEnded("the caller hung up")
        return reply

    async def set_variables(self, variables: list[tuple[str, str]]) -> None:
        """Set channel variables in as few round trips as is safe, the last one last.

        Plain values travel in one ``EXEC MSet``; should Asterisk lack MSet (``result=-2``),
        every variable is set again one by one, the last one last.
        """
        for command in commands.set_variables(variables):
            reply = await self.command(command)
            again = commands.without_mset(command, reply.result, variables)
            if again is not None:
                log.warning(
                    "[%s] MSet is not available; setting variables one by one", self.uniqueid
                )
                for one in again:
                    await self.command(one)
                return

    async def verbose(self, message: str, level: int = 3) -> None:
        """Write ``message`` to Asterisk's console (one round trip)."""
        await self.command(commands.verbose(message, level))
