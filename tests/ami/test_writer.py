"""The route writer: one write at a time, never blocking the event path, failures counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastagi_router.ami import RouteWriter, Served
from fastagi_router.errors import StoreError
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.store import SQLiteStore

NUMBERS = NumberParser("VN")


def fact(number: str = "0899990988", agent: str = "104", call: str = "1.1") -> Served:
    parsed = NUMBERS.caller(number)
    assert parsed is not None
    return Served("default", parsed, agent, "queue", "support", call)


class StuckStore:
    """A store whose learned writes wait until released, or fail."""

    def __init__(self, inner: SQLiteStore, error: Exception | None = None) -> None:
        self.inner = inner
        self.error = error
        self.release = asyncio.Event()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def learn_route(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        await self.release.wait()
        return await self.inner.learn_route(*args, **kwargs)


async def test_facts_are_written_in_order(store: SQLiteStore) -> None:
    metrics = Metrics()
    writer = RouteWriter(store, metrics)
    writer.start()
    try:
        assert writer.submit(fact(agent="104", call="1"))
        assert writer.submit(fact(agent="105", call="2"))
        await writer.drain()
    finally:
        await writer.stop()
    route = await store.get_route("default", number_key="+84899990988")
    assert route is not None and route.agent == "105"
    assert metrics.value("learned_total", outcome="created") == 1
    assert metrics.value("learned_total", outcome="updated") == 1


async def test_a_stuck_store_fills_the_queue_and_later_facts_are_dropped(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = StuckStore(store)
    metrics = Metrics()
    writer = RouteWriter(stuck, metrics, limit=3)  # type: ignore[arg-type]
    writer.start()
    try:
        # Submitting never waits: the writer has not run yet, the queue takes three.
        results = [writer.submit(fact(f"08999909{n:02d}", call=str(n))) for n in range(6)]
        assert results == [True, True, True, False, False, False]
        assert metrics.value("learned_total", outcome="dropped") == 3
        assert metrics.value("learning_queue") == 3
        stuck.release.set()
        await writer.drain()
        assert writer.submit(fact("0899990977", call="7"))
        await writer.drain()
        assert writer.submit(fact("0899990966", call="8"))  # no second "recording again"
        await writer.drain()
    finally:
        await writer.stop()
    assert metrics.value("learning_queue") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one when dropping starts, one when it ends
    assert "dropping learned facts" in warnings[0]
    assert "caught up after dropping 3 fact(s)" in warnings[1]
    page = await store.list_routes("default", 10, 0)
    assert page.total == 5


async def test_store_errors_are_counted_and_learning_goes_on(store: SQLiteStore) -> None:
    failing = StuckStore(store, StoreError("store: database is locked"))
    metrics = Metrics()
    writer = RouteWriter(failing, metrics)  # type: ignore[arg-type]
    writer.start()
    try:
        writer.submit(fact(call="1"))
        writer.submit(fact(call="2"))
        await writer.drain()
        failing.error = RuntimeError("a bug")
        writer.submit(fact(call="3"))
        await writer.drain()
        failing.error = None
        failing.release.set()
        writer.submit(fact(call="4"))
        await writer.drain()
    finally:
        await writer.stop()
    assert metrics.value("learned_total", outcome="store_error") == 2
    assert failing.calls == 4
    assert await store.get_route("default", number_key="+84899990988") is not None


async def test_stop_writes_what_is_queued(store: SQLiteStore) -> None:
    writer = RouteWriter(store, Metrics())
    writer.start()
    writer.submit(fact())
    await writer.stop()
    assert await store.get_route("default", number_key="+84899990988") is not None
