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

from fastagi_router.ami import ManagerLearning
from fastagi_router.config import Settings
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.routing import CustomerSource, Router
from fastagi_router.server import AGIServer
from fastagi_router.store import SQLiteStore, Store

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
        learning: ManagerLearning | None = None,
    ) -> None:
        self.settings = settings
        #: Learning from the Asterisk Manager, when ``ami.host`` is set.
        self.learning = learning
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
        store = store if store is not None else await SQLiteStore.open(settings.db)
        try:
            numbers = NumberParser(settings.default_region)
            router = Router(settings, store, numbers, metrics, sources)
            agi = AGIServer(settings, {"route": router.route}, router.fallback, metrics)
            learning = (
                ManagerLearning(settings, store, numbers, metrics) if settings.ami.enabled else None
            )
            await agi.start(agi_socket)
        except BaseException:
            if own_store:
                with contextlib.suppress(Exception):
                    await store.close()
            raise
        if learning is not None:
            # Connects in the background: calls are served whether Asterisk's Manager is
            # up, down or refusing the login.
            learning.start()
        return cls(settings, store, router, agi, metrics, own_store=own_store, learning=learning)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let calls in progress finish, close the store."""
        await self.agi.stop(grace)
        if self.learning is not None:
            await self.learning.stop()
        if self._own_store:
            await self.store.close()
