"""Typed keys for the state the API keeps on the aiohttp application and on each request."""

from __future__ import annotations

from aiohttp import web

from fastagi_router.api.tokens import TokenSet, TokenSpec
from fastagi_router.config import Settings
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey[Store]("store")
NUMBERS = web.AppKey("numbers", NumberParser)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", TokenSet)
#: The token that authenticated the request (set by the auth middleware).
TOKEN = web.RequestKey("token", TokenSpec)
