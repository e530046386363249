"""`Application`: everything ``fastagi-router serve`` runs, wired from one `Settings`.

Dependencies are built here and passed down; nothing below this module reaches for a
global. Later parts (the REST API, the upstream source, the Manager listener) are started
and stopped here too, in order, so that a failure to start one stops the others cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Sequence

from fastagi_router.config import Settings
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.routing import CustomerSource, Router
from fastagi_router.server import AGIServer
from fastagi_router.store import SQLiteStore, Store
from fastagi_router.store.hot import HotStore

log = logging.getLogger("fastagi_router")


class Application:
    """The running router: store, routing policy and FastAGI server."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        router: Router,
        agi: AGIServer,
        metrics: Metrics,
        *,
        own_store: bool = True,
    ) -> None:
        self.settings = settings
        self._own_store = own_store
        self.store = store
        self.router = router
        self.agi = agi
        self.metrics = metrics

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        agi_socket: socket.socket | None = None,
        sources: Sequence[CustomerSource] = (),
        store: Store | None = None,
    ) -> Application:
        """Open the store and start serving FastAGI. Raises `RouterError` on failure."""
        metrics = Metrics()
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
                store = hot
        try:
            router = Router(
                settings, store, NumberParser(settings.default_region), metrics, sources
            )
            agi = AGIServer(
                settings,
                {"route": router.route},
                router.fallback,
                metrics,
                fast_handlers={"route": router.route_now},
            )
            await agi.start(agi_socket)
        except BaseException:
            if own_store:
                with contextlib.suppress(Exception):
                    await store.close()
            raise
        return cls(settings, store, router, agi, metrics, own_store=own_store)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let calls in progress finish, close the store."""
        await self.agi.stop(grace)
        if self._own_store:
            await self.store.close()
