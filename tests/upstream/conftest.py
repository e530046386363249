"""Fixtures for the upstream tests: the fake API on 127.0.0.1, and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fastagi_router.upstream.client import AiohttpTransport, Fields, UpstreamClient
from tests.fakes.upstream import FakeUpstream


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    yield server
    await server.close()


@pytest.fixture
async def transport(fake: FakeUpstream) -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport.open(fake.url, fake.token, max_connections=4)
    yield t
    await t.close()


@pytest.fixture
def client(transport: AiohttpTransport) -> UpstreamClient:
    return UpstreamClient(transport, Fields())
