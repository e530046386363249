"""`Retention`: deletes what the router no longer keeps, periodically, in one process.

Two things have a lifetime: learned routes (`learning.affinity_days` after they were last
seen; the routing read already ignores them past the window, this deletes them) and audit
entries (`audit.retention_days`). Manual routes, customers and the upstream cache (which
keeps itself under its own TTLs and size) are not touched. The purge runs a minute after
start-up and then every hour, in the process that runs the REST API and the Manager
listener (the only process with ``workers = 1``; the supervisor with workers), so that
several workers do not purge the same rows at once.

An expiry is audited as ``system:expiry`` (one entry per account that lost routes, with
the count): a route that disappears without an administrator touching it is then
explained. A prune of the audit log is not itself audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from fastagi_router.config import Settings
from fastagi_router.errors import StoreError
from fastagi_router.metrics import Metrics
from fastagi_router.store import Store
from fastagi_router.store.audit import timestamp

log = logging.getLogger("fastagi_router.retention")

EXPIRY_ACTOR = "system:expiry"
FIRST_RUN_S = 60.0
INTERVAL_S = 3600.0
#: Rows deleted per transaction: about 15 ms of write lock for learned routes and 8 ms for
#: audit entries, median, on a store of a million of each (``python -m bench.data_ops``).
BATCH = 5000
_DAY = 86400


class Retention:
    """The periodic purge of expired learned routes and old audit entries."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        first_run: float = FIRST_RUN_S,
        interval: float = INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self._clock = clock
        self._first_run = first_run
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        metrics.describe(
            "retention_deleted_total", "counter", "Rows deleted by the retention purge, by kind"
        )

    async def run_once(self) -> tuple[int, int]:
        """Purge now; return (learned routes deleted, audit entries deleted).

        Raises `StoreError` when the store refuses the writes.
        """
        now = self._clock()
        routes = entries = 0
        days = self.settings.learning.affinity_days
        if days:
            unseen = timestamp(now - days * _DAY)
            routes = await self._batches(
                lambda: self.store.expire_learned(unseen, actor=EXPIRY_ACTOR, limit=BATCH)
            )
        keep = self.settings.audit.retention_days
        if keep:
            written = timestamp(now - keep * _DAY)
            entries = await self._batches(lambda: self.store.prune_audit(written, limit=BATCH))
        if routes:
            self.metrics.inc("retention_deleted_total", routes, kind="learned_routes")
            log.info("retention: deleted %d learned route(s) not seen for %d days", routes, days)
        if entries:
            self.metrics.inc("retention_deleted_total", entries, kind="audit_entries")
            log.info("retention: deleted %d audit entries older than %d days", entries, keep)
        return routes, entries

    @staticmethod
    async def _batches(purge: Callable[[], Awaitable[int]]) -> int:
        """Run ``purge`` until a batch comes back short; return the total. Each batch is
        its own transaction, so API writes and learning wait for one batch at most (a
        first purge of years of entries would otherwise hold the write lock for seconds)."""
        total = 0
        while True:
            count = await purge()
            total += count
            if count < BATCH:
                return total
            await asyncio.sleep(0)

    def start(self) -> None:
        """Run the purge in the background: first after ``first_run`` s, then every
        ``interval`` s."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        await asyncio.sleep(self._first_run)
        while True:
            try:
                await self.run_once()
            except StoreError as exc:
                # Nothing is lost by waiting: the routing read ignores expired routes anyway.
                log.warning("retention: purge failed, retrying in %.0f s: %s", self._interval, exc)
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        """Stop the background purge (one in progress is abandoned and rolled back)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
