"""`create_app`: the aiohttp application of the REST API.

The application shares the store and the metrics of the FastAGI server when it is given
them (`fastagi_router.app.Application` does), so a change made over HTTP applies to the
very next call. Given only settings, it opens the store itself for its lifetime.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from fastagi_router.api import access, customers, lookup, ops, smartrouting
from fastagi_router.api.keys import METRICS, NUMBERS, SETTINGS, STORE, TOKENS
from fastagi_router.api.middleware import authenticate, count_requests, json_errors
from fastagi_router.api.tokens import TokenSet, TokenSpec, digest, generate_token, token_set
from fastagi_router.config import Settings
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.store import SQLiteStore, Store

log = logging.getLogger("fastagi_router.api")


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """Return the REST API application for ``settings``.

    ``store``: the store to serve (not closed by the application); None opens
    ``settings.db`` at start-up and closes it at clean-up. Tokens come from ``api.token``
    and ``api.tokens``; with none configured, one is generated at start-up and logged once.
    """
    app = web.Application(
        client_max_size=settings.http.max_body_bytes,
        middlewares=[count_requests, json_errors, authenticate],
    )
    app[SETTINGS] = settings
    app[NUMBERS] = NumberParser(settings.default_region)
    metrics = metrics if metrics is not None else Metrics()
    metrics.describe(
        "http_requests_total", "counter", "REST API requests by method, route and status"
    )
    app[METRICS] = metrics
    if store is not None:
        app[STORE] = store
    else:
        app.cleanup_ctx.append(_own_store)
    app.cleanup_ctx.append(_tokens)
    for group in (smartrouting, customers, lookup, access, ops):
        group.add_routes(app)
    return app


async def _own_store(app: web.Application) -> AsyncIterator[None]:
    store = await SQLiteStore.open(app[SETTINGS].db)
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


async def _tokens(app: web.Application) -> AsyncIterator[None]:
    """Resolve the tokens at start-up; generate one (logged once, kept as a hash) if none."""
    api = app[SETTINGS].api
    tokens = token_set(api.token, api.tokens)
    if not len(tokens):
        token = generate_token()
        tokens = TokenSet([TokenSpec(sha256=digest(token), write=True, name="generated")])
        log.warning(
            "no API token is configured; generated one for this run only "
            "(write access to every account): %s -- it changes at every start: set "
            "FASTAGI_ROUTER_API_TOKEN, or api.tokens with hashes (fastagi-router token new); "
            "see the README, REST API",
            token,
        )
    app[TOKENS] = tokens
    yield
