"""The SQLite store when its file misbehaves: full, locked by another process, read-only.

Each fault is the real condition where the machine allows it (another process holding the
lock; a tiny tmpfs that fills up; a file the kernel refuses to write), else SQLite's own
report of it (``PRAGMA max_page_count`` makes it answer SQLITE_FULL exactly as a full disk
does). The store must say what went wrong (`StoreError` naming it), never wait longer
than its busy timeout, keep answering reads, and work again once the fault is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastagi_router.errors import StoreError
from fastagi_router.model import Customer
from fastagi_router.store import SQLiteStore
from tests.fakes.locker import Locker

KEY = "+84899990988"


def customer(n: int, *, size: int = 150) -> Customer:
    return Customer("default", f"C{n}", name="x" * size, phone_numbers=(f"+848999{n:05d}",))


@contextlib.asynccontextmanager
async def opened(path: Path, **options: int) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(str(path), **options)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        await store.close()


async def fill(store: SQLiteStore, start: int = 0, limit: int = 5000) -> tuple[int, StoreError]:
    """Write customers until the store refuses; return how many went in and the refusal."""
    for n in range(start, start + limit):
        try:
            await store.import_customers([customer(n)])
        except StoreError as exc:
            return n - start, exc
    raise AssertionError(f"{limit} customers fitted: the store never filled up")


async def test_full_says_full_and_works_again_once_there_is_room(tmp_path: Path) -> None:
    async with opened(tmp_path / "full.db") as store:
        await store.set_route("default", "0899990988", KEY, "104")
        pages = next(iter(await store._writer.execute_fetchall("PRAGMA page_count")))[0]
        await store._writer.execute(f"PRAGMA max_page_count = {pages + 2}")
        written, refused = await fill(store)
        assert "full" in str(refused), refused  # not "cannot rollback ..."
        assert not store._writer.in_transaction
        # Reads go on; the refused writes left nothing behind.
        match = await store.lookup_number("default", KEY)
        assert match.route is not None and match.route.agent == "104"
        assert (await store.list_customers(None, 10000, 0)).total == written
        await store._writer.execute("PRAGMA max_page_count = 1073741823")
        await store.import_customers([customer(99999)])
        assert await store.get_customer("default", "C99999") is not None


async def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(tiny_tmpfs: Path) -> None:
    filler = tiny_tmpfs / "filler"
    async with opened(tiny_tmpfs / "router.db") as store:
        await store.set_route("default", "0899990988", KEY, "104")
        filler.write_bytes(b"\0" * 200_000)  # someone else's file takes most of the room
        written, refused = await fill(store)
        assert "full" in str(refused), refused
        started = time.monotonic()
        with pytest.raises(StoreError, match="full"):
            await store.set_route("default", "0899990977", "+84899990977", "105")
        assert time.monotonic() - started < 1.0  # a full disk is said at once, never waited on
        match = await store.lookup_number("default", KEY)
        assert match.route is not None and match.route.agent == "104"
        filler.unlink()
        route = await store.set_route("default", "0899990977", "+84899990977", "105")
        assert route.agent == "105"
        assert (await store.list_customers(None, 10000, 0)).total == written


async def test_concurrent_writes_give_up_within_one_busy_timeout(tmp_path: Path) -> None:
    """Another process holds the write lock: every write fails within the busy timeout,
    not one timeout after the other, and reads are answered meanwhile."""
    path = tmp_path / "locked.db"
    async with opened(path, busy_timeout_ms=1000) as store:
        await store.set_route("default", "0899990988", KEY, "104")
        async with Locker(path):

            async def write(n: int) -> float:
                started = time.monotonic()
                with pytest.raises(StoreError, match=r"busy|locked"):
                    await store.set_route("default", f"089999{n:04d}", f"+8489999{n:04d}", "1")
                return time.monotonic() - started

            waits = await asyncio.gather(*(write(n) for n in range(4)))
            match = await store.lookup_number("default", KEY)
            assert match.route is not None and match.route.agent == "104"
        # One busy timeout for all of them (plus a margin for a loaded machine), not four.
        assert max(waits) < 1.0 + 0.6, waits
        route = await store.set_route("default", "0899990977", "+84899990977", "105")
        assert route.agent == "105"
        busy = list(await store._writer.execute_fetchall("PRAGMA busy_timeout"))
        assert busy[0][0] == 1000  # the budget left to the last waiter was not kept


async def test_an_exclusive_lock_taken_before_start_fails_the_start_in_time(
    tmp_path: Path,
) -> None:
    """In WAL mode every open connection holds a shared lock on the file, so no process
    can take the exclusive lock while the router runs; taken before, the router says so."""
    path = tmp_path / "exclusive.db"
    async with opened(path) as store:
        await store.set_route("default", "0899990988", KEY, "104")
    async with Locker(path, "exclusive"):
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            await SQLiteStore.open(str(path), busy_timeout_ms=500)
        assert time.monotonic() - started < 0.5 + 1.0
    async with opened(path) as store:
        assert (await store.lookup_number("default", KEY)).route is not None


class _SlowConnection:
    """The loop-thread connection, as SQLite behaves when another process holds the
    WAL-index read locks: each read comes back late (here 60 ms, there about 10 s)."""

    def __init__(self, inner: sqlite3.Connection) -> None:
        self.inner = inner
        self.calls = 0

    def execute(self, sql: str, params: object) -> sqlite3.Cursor:
        self.calls += 1
        time.sleep(0.06)
        return self.inner.execute(sql, params)  # type: ignore[arg-type]

    def close(self) -> None:
        self.inner.close()


async def test_a_slow_loop_thread_read_pauses_them(tmp_path: Path) -> None:
    async with opened(tmp_path / "slow.db") as store:
        await store.set_route("default", "0899990988", KEY, "104")
        assert store._fast is not None
        slow = _SlowConnection(store._fast)
        store._fast = slow  # type: ignore[assignment]
        first = store.lookup_number_now("default", KEY)
        assert first is not None and first.route is not None  # late, but an answer
        assert store.fast_stalls == 1
        # Paused: nothing more on the loop's thread; the thread answers instead.
        assert store.lookup_number_now("default", KEY) is None
        assert store.data_version_now() is None
        match = await store.lookup_number("default", KEY)
        assert match.route is not None and match.route.agent == "104"
        assert slow.calls == 2  # the two reads of the first lookup only
        # Once the pause is over, a read that is slow again pauses twice as long.
        store._fast_resume_at = 0.0
        assert store.data_version_now() is not None
        assert store.fast_stalls == 2
        assert store._fast_resume_at - time.monotonic() > 5.0
