"""`RouteWriter`: records learned facts in the store from one task, off the event path.

The Manager connection must never wait on SQLite, and SQLite must never be asked to do
more than one learned write at a time on top of the CLI's and the API's: facts go into a
bounded queue that one task drains. When the queue is full (the store is stuck), facts are
dropped and counted rather than held: learning is best effort, and the next call from the
same customer teaches the same thing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastagi_router.ami.learning import Served
from fastagi_router.errors import StoreError
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics
from fastagi_router.store import Store

log = logging.getLogger("fastagi_router.ami")

#: Facts waiting to be written; a store stuck for longer than this many calls loses some.
QUEUE_LIMIT = 1000


class RouteWriter:
    """Writes `Served` facts with `Store.learn_route`, one at a time, in arrival order."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        overwrite_manual: bool = False,
        limit: int = QUEUE_LIMIT,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.overwrite_manual = overwrite_manual
        self._queue: asyncio.Queue[Served] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        metrics.describe(
            "learned_total", "counter", "Facts learned from Manager events, by what they changed"
        )
        metrics.gauge(
            "learning_queue",
            lambda: float(self._queue.qsize()),
            "Learned facts waiting to be written",
        )

    def submit(self, served: Served) -> bool:
        """Queue ``served`` for writing; return False (and count it) when the queue is full."""
        try:
            self._queue.put_nowait(served)
        except asyncio.QueueFull:
            self.metrics.inc("learned_total", outcome="dropped")
            if not self._dropped:
                # Once per episode: a stuck store would otherwise log every answered call.
                log.warning(
                    "learning: the store is not keeping up (%d facts waiting); dropping "
                    "learned facts until it does",
                    self._queue.qsize(),
                )
            self._dropped += 1
            return False
        return True

    def start(self) -> None:
        """Start the writing task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="route-writer")

    async def drain(self) -> None:
        """Wait until every fact queued so far has been written (or has failed)."""
        await self._queue.join()

    async def stop(self, grace: float = 2.0) -> None:
        """Write what is queued, for up to ``grace`` seconds, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.drain()
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            served = await self._queue.get()
            try:
                await self._write(served)
            except Exception:
                # A bug in one write must not stop learning for the life of the process.
                log.exception("learning: failed to record %s", sanitize(served.number.key))
            finally:
                self._queue.task_done()
            if self._dropped and self._queue.empty():
                # Said once the backlog is gone, not at the first free slot: a store at the
                # edge would otherwise log a pair of lines every few facts.
                log.warning("learning: caught up after dropping %d fact(s)", self._dropped)
                self._dropped = 0

    async def _write(self, served: Served) -> None:
        try:
            result = await self.store.learn_route(
                served.account,
                served.number.raw,
                served.number.key,
                served.agent,
                overwrite_manual=self.overwrite_manual,
            )
        except StoreError as exc:
            self.metrics.inc("learned_total", outcome="store_error")
            log.warning(
                "learning: could not record %s -> %s: %s",
                sanitize(served.number.key),
                served.agent,
                exc,
            )
            return
        self.metrics.inc("learned_total", outcome=result.outcome)
        level = logging.DEBUG if result.outcome == "refreshed" else logging.INFO
        log.log(
            level,
            "learning: %s %s -> %s (%s %s, call %s): %s%s",
            served.account,
            sanitize(served.number.key),
            served.agent,
            served.via,
            sanitize(served.where),
            sanitize(served.call),
            result.outcome,
            f", kept manual entry {result.route.agent}" if result.outcome == "pinned" else "",
        )
