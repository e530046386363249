"""`CircuitBreaker`: stop paying the API's timeout while it is down, and notice when it is back.

Theory of operation::

             failures in a row reach `threshold`
    CLOSED ───────────────────────────────────────────▶ OPEN
      ▲                                                  │
      │ the probe succeeds            `cooldown` passed: │ the next request is the probe
      │                                                  ▼
      └──────────────────────────────────────────── HALF_OPEN
                        the probe fails: OPEN again, for another `cooldown`

While OPEN, `allow` answers False and callers serve what they have cached (or FALLBACK)
at once. In HALF_OPEN exactly one request is let through; should its outcome never be
reported (the task was cancelled at shutdown), another probe is allowed after `cooldown`.

The breaker reads time from the ``clock`` it is given (``time.monotonic`` by default), so
tests move time by hand. It does no I/O and is not thread-safe: it lives on the event loop.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

log = logging.getLogger("fastagi_router.upstream")


class CircuitState(enum.StrEnum):
    """The breaker's state; the value is what metrics and logs show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and decides whether the next request may go out."""

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        if threshold < 1 or cooldown < 0:
            raise ValueError("threshold must be at least 1 and cooldown at least 0")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at: float | None = None

    @property
    def state(self) -> CircuitState:
        """The current state (OPEN turns into HALF_OPEN once the cooldown has passed)."""
        if self._state is CircuitState.OPEN and self._cooled_down(self._opened_at):
            self._move(CircuitState.HALF_OPEN)
        return self._state

    @property
    def failures(self) -> int:
        """Failures in a row since the last success."""
        return self._failures

    def allow(self) -> bool:
        """Return True if a request may go out now; in HALF_OPEN this takes the one probe."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        if self._probe_at is not None and not self._cooled_down(self._probe_at):
            return False
        self._probe_at = self._clock()
        return True

    def record_success(self) -> None:
        """The API answered (whatever it said): close the circuit."""
        self._failures = 0
        self._probe_at = None
        if self._state is not CircuitState.CLOSED:
            self._move(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """The API failed (timeout, reset, 5xx, garbage): count it; open when it is too many."""
        self._failures += 1
        self._probe_at = None
        if self._state is CircuitState.HALF_OPEN or (
            self._state is CircuitState.CLOSED and self._failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._move(CircuitState.OPEN)

    def _cooled_down(self, since: float) -> bool:
        return self._clock() - since >= self.cooldown

    def _move(self, state: CircuitState) -> None:
        previous, self._state = self._state, state
        if state is CircuitState.OPEN:
            log.warning(
                "upstream API: circuit open after %d failure(s) in a row; not asking it for %g s",
                self._failures,
                self.cooldown,
            )
        elif state is CircuitState.CLOSED:
            log.info("upstream API: answering again; circuit closed (was %s)", previous)
        if self._on_change is not None:
            self._on_change(state)
