"""`Application`: everything ``fastagi-router serve`` runs, wired from one `Settings`.

Dependencies are built here and passed down; nothing below this module reaches for a
global. Later parts (the REST API, the upstream source, the Manager listener) are started
and stopped here too, in order, so that a failure to start one stops the others cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence

from fastagi_router.ami import ManagerLearning
from fastagi_router.api.server import HTTPServer
from fastagi_router.config import Settings, merge_reloadable
from fastagi_router.logutil import configure
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.retention import Retention
from fastagi_router.routing import CustomerSource, Router
from fastagi_router.server import AGIServer
from fastagi_router.store import SQLiteStore, Store
from fastagi_router.store.hot import HotStore
from fastagi_router.upstream.source import UpstreamSource

log = logging.getLogger("fastagi_router")


class Application:
    """The running router: store, routing policy, FastAGI server and REST API (``http``,
    None when ``http.enabled`` is off), all on one store.

    With several workers, the supervisor runs an `Application` without FastAGI (``router``
    and ``agi`` None: the REST API and the Manager listener) and each worker one with
    FastAGI only.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        router: Router | None,
        agi: AGIServer | None,
        metrics: Metrics,
        *,
        http: HTTPServer | None = None,
        own_store: bool = True,
        upstream: UpstreamSource | None = None,
        learning: ManagerLearning | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        #: Learning from the Asterisk Manager, when ``ami.host`` is set.
        self.learning = learning
        #: The periodic purge of expired data, in the one process that runs it.
        self.retention = retention
        self._own_store = own_store
        self.store = store
        self.router = router
        self.agi = agi
        self.http = http
        self.metrics = metrics

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        agi_socket: socket.socket | None = None,
        http_socket: socket.socket | None = None,
        sources: Sequence[CustomerSource] = (),
        store: Store | None = None,
        serve_agi: bool = True,
        metrics: Metrics | None = None,
        purge: bool = True,
    ) -> Application:
        """Open the store, start serving FastAGI, then the REST API on the same store.

        With ``upstream.url`` set, the upstream API (through its cache) is asked after
        ``sources``. With ``purge`` (every process but a worker), expired learned routes
        and old audit entries are deleted periodically (`Retention`). Raises `RouterError`
        (or `OSError` for an address that cannot be bound) on failure, with whatever had
        started stopped again.
        """
        metrics = metrics if metrics is not None else Metrics()
        _process_gauges(metrics)
        own_store = store is None
        if store is None:
            sqlite = await SQLiteStore.open(settings.db, fast_reads=settings.store.fast_reads)
            store = sqlite
            if settings.store.hot_numbers:
                hot = HotStore(
                    sqlite, size=settings.store.hot_numbers, max_age=settings.store.hot_max_age_s
                )
                metrics.gauge(
                    "hot_numbers", lambda: float(len(hot)), "Numbers answered from memory"
                )
                metrics.describe(
                    "cache_lookups_total",
                    "counter",
                    "Cache lookups by cache (hot: the in-memory layer; upstream: the API's "
                    "answers) and result (hit, miss; upstream also negative, stale)",
                )
                metrics.counter_read(
                    "cache_lookups_total", lambda: float(hot.hits), cache="hot", result="hit"
                )
                metrics.counter_read(
                    "cache_lookups_total", lambda: float(hot.misses), cache="hot", result="miss"
                )
                store = hot
        upstream: UpstreamSource | None = None
        agi: AGIServer | None = None
        router: Router | None = None
        try:
            numbers = NumberParser(settings.default_region)
            if serve_agi:
                if settings.upstream.enabled:
                    upstream = await UpstreamSource.open(settings, metrics)
                    sources = (*sources, upstream)
                router = Router(settings, store, numbers, metrics, sources)
                agi = AGIServer(
                    settings,
                    {"route": router.route},
                    router.fallback,
                    metrics,
                    fast_handlers={"route": router.route_now},
                )
            learning = (
                ManagerLearning(settings, store, numbers, metrics) if settings.ami.enabled else None
            )
            if agi is not None:
                await agi.start(agi_socket)
            http = None
            if settings.http.enabled:
                http = HTTPServer(settings, store, metrics)
                await http.start(http_socket)
        except BaseException:
            if agi is not None:
                with contextlib.suppress(Exception):
                    await agi.stop(0)
            if upstream is not None:
                with contextlib.suppress(Exception):
                    await upstream.close()
            if own_store:
                with contextlib.suppress(Exception):
                    await store.close()
            raise
        retention = Retention(settings, store, metrics) if purge else None
        if retention is not None:
            retention.start()
        if learning is not None:
            # Connects in the background: calls are served whether Asterisk's Manager is
            # up, down or refusing the login.
            learning.start()
        return cls(
            settings,
            store,
            router,
            agi,
            metrics,
            http=http,
            own_store=own_store,
            upstream=upstream,
            learning=learning,
            retention=retention,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting requests and calls, let those in progress finish, close the store."""
        if self.http is not None:
            await self.http.stop()
        if self.agi is not None:
            await self.agi.stop(grace)
        if self.learning is not None:
            await self.learning.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.upstream is not None:
            await self.upstream.close()
        if self._own_store:
            await self.store.close()

    def reload(self, new: Settings) -> list[str]:
        """Apply the reloadable settings of ``new`` (see `config.RELOADABLE`) to the running
        router without dropping a call; return the names of changed settings that need a
        restart (they keep their current value).

        Raises `ConfigError` (and changes nothing) when the merged settings are invalid.
        """
        merged, restart = merge_reloadable(self.settings, new)
        if merged.log != self.settings.log:
            if self.agi is not None:
                self.agi.call_log.flush()  # in the format of their time
            configure(merged.log)
        self.settings = merged
        if self.router is not None:
            self.router.apply(merged)
        if self.agi is not None:
            self.agi.apply(merged)
        if self.http is not None:
            self.http.apply(merged)
        return restart


def _process_gauges(metrics: Metrics) -> None:
    """Gauges that show a leak: tasks alive, open file descriptors."""
    metrics.gauge("asyncio_tasks", lambda: float(len(asyncio.all_tasks())), "asyncio tasks alive")

    def open_fds() -> float:
        try:
            return float(len(os.listdir("/proc/self/fd")))
        except OSError:
            return float("nan")

    metrics.gauge("open_fds", open_fds, "File descriptors open (with workers: in all of them)")
