"""`ManagerLearning`: the Manager listener, the event interpreter and the route writer.

Started by the application when ``ami.host`` is set, stopped with it. Events flow
listener -> `CallTracker` (pure) -> `RouteWriter` (one task, bounded queue) -> store; none
of it is on the path of a FastAGI call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastagi_router.ami.learning import EVENTS, CallTracker, Served, Skipped
from fastagi_router.ami.listener import ManagerListener, ManagerStatus, Sleep
from fastagi_router.ami.writer import RouteWriter
from fastagi_router.config import Settings
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.store import Store

log = logging.getLogger("fastagi_router.ami")


class ManagerLearning:
    """Learns the sticky-agent table from the Asterisk Manager's events."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        numbers: NumberParser,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracker = CallTracker(settings.learning, numbers)
        self.writer = RouteWriter(
            store, metrics, overwrite_manual=settings.learning.overwrite_manual
        )
        extra: dict[str, Any] = {}
        if sleep is not None:
            extra["sleep"] = sleep
        if rand is not None:
            extra["rand"] = rand
        self.listener = ManagerListener(
            settings.ami, self.on_event, metrics, events=EVENTS, **extra
        )
        self._clock = clock
        metrics.describe(
            "learning_skipped_total", "counter", "Answered calls that taught nothing, by reason"
        )

    @property
    def status(self) -> ManagerStatus:
        """The Manager connection's state (for health checks)."""
        return self.listener.status

    def start(self) -> None:
        """Start writing and connecting; returns at once, whether Asterisk is up or not."""
        self.writer.start()
        self.listener.start()

    async def stop(self) -> None:
        """Disconnect, then write what was learned and is still queued."""
        await self.listener.stop()
        await self.writer.stop()

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Interpret one Manager event; queue what it teaches."""
        verdict = self.tracker.feed(event, self._clock())
        if isinstance(verdict, Served):
            self.writer.submit(verdict)
        elif isinstance(verdict, Skipped):
            self.metrics.inc("learning_skipped_total", reason=verdict.reason)
            log.debug("learning: skipped (%s) %s", verdict.reason, sanitize(verdict.detail))
