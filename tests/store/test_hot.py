"""The in-memory layer for hot numbers: fast, bounded, and never stale after a change."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastagi_router.model import Customer
from fastagi_router.store import SQLiteStore
from fastagi_router.store.hot import HotStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_repeat_lookups_are_answered_from_memory(tmp_path: Path) -> None:
    inner = await SQLiteStore.open(str(tmp_path / "h.db"))
    try:
        await inner.set_route("default", "x", "+1", "100")
        hot = HotStore(inner)
        for _ in range(5):
            match = await hot.lookup_number("default", "+1")
            assert match.route is not None and match.route.agent == "100"
        assert (hot.misses, hot.hits) == (1, 4)
    finally:
        await inner.close()


async def test_a_change_by_another_process_applies_to_the_next_lookup(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    inner = await SQLiteStore.open(str(path))
    try:
        await inner.set_route("default", "x", "+1", "100")
        hot = HotStore(inner)
        await hot.lookup_number("default", "+1")
        other = sqlite3.connect(path)
        with other:
            other.execute("UPDATE routes SET agent = '200'")
        other.close()
        match = await hot.lookup_number("default", "+1")
        assert match.route is not None and match.route.agent == "200"
        await inner.import_customers(
            [Customer(account="default", customer_id="C", phone_numbers=("+1",), code="9")]
        )
        again = await hot.lookup_number("default", "+1")
        assert again.customer is not None
        assert await hot.lookup_code("default", "9") is not None
    finally:
        await inner.close()


async def test_entries_expire_and_the_layer_is_bounded(tmp_path: Path) -> None:
    inner = await SQLiteStore.open(str(tmp_path / "h.db"))
    try:
        clock = Clock()
        hot = HotStore(inner, size=3, max_age=10.0, clock=clock)
        for n in range(5):
            await hot.lookup_number("default", f"+{n}")
        assert len(hot) == 3
        await hot.lookup_number("default", "+4")
        assert hot.hits == 1
        clock.now = 11.0
        await hot.lookup_number("default", "+4")
        assert hot.hits == 1 and hot.misses == 6
    finally:
        await inner.close()


async def test_without_a_loop_thread_connection_nothing_is_cached(tmp_path: Path) -> None:
    inner = await SQLiteStore.open(str(tmp_path / "h.db"), fast_reads=False)
    try:
        hot = HotStore(inner)
        await hot.lookup_number("default", "+1")
        await hot.lookup_number("default", "+1")
        assert len(hot) == 0 and hot.hits == 0
        page = await hot.list_routes(None, 10, 0)  # everything else passes through
        assert page.total == 0
    finally:
        await inner.close()
