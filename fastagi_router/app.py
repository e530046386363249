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
from fastagi_router.upstream.source import UpstreamSource

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
        upstream: UpstreamSource | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
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
        """Open the store and start serving FastAGI. Raises `RouterError` on failure.

        With ``upstream.url`` set, the upstream API (through its cache) is asked after
        ``sources``.
        """
        metrics = Metrics()
        own_store = store is None
        store = store if store is not None else await SQLiteStore.open(settings.db)
        upstream: UpstreamSource | None = None
        try:
            if settings.upstream.enabled:
                upstream = await UpstreamSource.open(settings, metrics)
                sources = (*sources, upstream)
            router = Router(
                settings, store, NumberParser(settings.default_region), metrics, sources
            )
            agi = AGIServer(settings, {"route": router.route}, router.fallback, metrics)
            await agi.start(agi_socket)
        except BaseException:
            if upstream is not None:
                with contextlib.suppress(Exception):
                    await upstream.close()
            if own_store:
                with contextlib.suppress(Exception):
                    await store.close()
            raise
        return cls(settings, store, router, agi, metrics, own_store=own_store, upstream=upstream)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let calls in progress finish, close the store."""
        await self.agi.stop(grace)
        if self.upstream is not None:
            await self.upstream.close()
        if self._own_store:
            await self.store.close()
