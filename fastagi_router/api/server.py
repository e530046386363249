"""`HTTPServer`: runs the REST API application on ``http.listen`` beside the FastAGI server."""

from __future__ import annotations

import logging
import socket

from aiohttp import web

from fastagi_router.api.app import create_app
from fastagi_router.api.keys import TOKENS
from fastagi_router.api.tokens import token_set
from fastagi_router.config import Settings, parse_hostport
from fastagi_router.metrics import Metrics
from fastagi_router.store import Store

log = logging.getLogger("fastagi_router.api")

#: Longest wait for requests in progress when the server stops.
SHUTDOWN_TIMEOUT = 5.0


class HTTPServer:
    """The REST API's listener: `start`, `stop`, and the address actually bound."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.app = create_app(settings, store=store, metrics=metrics)
        self._runner: web.AppRunner | None = None

    async def start(self, sock: socket.socket | None = None) -> None:
        """Start listening on ``http.listen`` (or on ``sock``). Raises `OSError` when the
        address cannot be bound."""
        runner = web.AppRunner(self.app, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site: web.BaseSite
            if sock is not None:
                site = web.SockSite(runner, sock)
            else:
                host, port = parse_hostport(self.settings.http.listen, "http.listen")
                site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("REST API listening on %s", ", ".join(self.addresses()))

    def addresses(self) -> list[str]:
        """The ``host:port`` addresses bound."""
        if self._runner is None:
            return []
        return [f"{a[0]}:{a[1]}" for a in self._runner.addresses if isinstance(a, tuple)]

    @property
    def port(self) -> int:
        """The first bound port (useful when listening on port 0)."""
        assert self._runner is not None
        port: int = self._runner.addresses[0][1]
        return port

    def apply(self, settings: Settings) -> None:
        """Accept the tokens of ``settings`` from the next request on (a reload). Without any
        configured token, the token generated at start-up stays."""
        tokens = token_set(settings.api.token, settings.api.tokens)
        if len(tokens):
            self.app[TOKENS].replace(tokens)
        self.settings = settings

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish (a few seconds at most)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
