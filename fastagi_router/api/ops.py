"""Endpoints without authentication: probes, the API description and the metrics."""

from __future__ import annotations

from aiohttp import web

from fastagi_router.api.errors import error_response
from fastagi_router.api.keys import METRICS, STORE
from fastagi_router.api.openapi import document
from fastagi_router.errors import StoreError


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the process answers."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: the store answers a trivial read."""
    try:
        await request.app[STORE].ping()
    except StoreError:
        return error_response("store_unavailable", "the store does not answer")
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: every metric in the Prometheus text format, or in OpenMetrics when
    the scraper's Accept header asks for it."""
    body, content_type = request.app[METRICS].exposition(request.headers.get("Accept", ""))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the OpenAPI 3.1 description of this API."""
    return web.json_response(document())


def add_routes(app: web.Application) -> None:
    """Register these endpoints."""
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readyz, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
