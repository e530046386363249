"""The in-memory layer for hot numbers: fast, bounded, and never stale after a change."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastagi_router.model import Customer
from fastagi_router.store import SQLiteStore
from fastagi_router.store.hot import HotStore
from tests.fakes.locker import Locker


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


# -- the change signal, end to end: every kind of commit reaches the very next lookup ------


@contextlib.asynccontextmanager
async def hot_on(path: Path, agent: str = "100") -> AsyncIterator[tuple[SQLiteStore, HotStore]]:
    """A store holding one route to ``agent``, behind a hot layer that has it in memory."""
    inner = await SQLiteStore.open(str(path))
    try:
        await inner.set_route("default", "x", "+1", agent)
        hot = HotStore(inner)
        await agent_of(hot)
        assert await agent_of(hot) == agent and hot.hits == 1  # answered from memory
        yield inner, hot
    finally:
        await inner.close()


async def agent_of(hot: HotStore) -> str | None:
    match = await hot.lookup_number("default", "+1")
    return match.route.agent if match.route is not None else None


def in_another_process(path: Path, *statements: str) -> None:
    """Run ``statements`` on ``path`` with the sqlite3 module of a fresh interpreter."""
    script = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "for statement in sys.argv[2:]:\n"
        "    db.execute(statement).fetchall()\n"
        "db.close()\n"
    )
    python(script, str(path), *statements)


def python(script: str, *args: str) -> str:
    """Run ``script`` in a fresh interpreter; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def replace_with_a_copy(path: Path, aside: Path) -> None:
    """Move ``path`` aside and put a copy of it in its place: a new file, same bytes."""
    os.rename(path, aside)
    path.write_bytes(aside.read_bytes())


async def test_the_store_signals_changes_by_the_wal_index(tmp_path: Path) -> None:
    async with hot_on(tmp_path / "h.db") as (inner, _):
        assert inner._wal_watch is not None  # not the PRAGMA data_version fallback
        token = inner.change_token_now()
        assert isinstance(token, bytes) and inner.change_token_now() == token


async def test_a_commit_by_another_process_applies_to_the_next_lookup(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with hot_on(path) as (_, hot):
        in_another_process(path, "UPDATE routes SET agent = '200'")
        assert await agent_of(hot) == "200"
        in_another_process(path, "DELETE FROM routes")
        assert await agent_of(hot) is None


async def test_our_own_writes_apply_to_the_next_lookup(tmp_path: Path) -> None:
    async with hot_on(tmp_path / "h.db") as (inner, hot):
        await inner.set_route("default", "x", "+1", "300")
        assert await agent_of(hot) == "300"
        await inner.delete_route("default", number_key="+1")
        assert await agent_of(hot) is None


@pytest.mark.parametrize("mode", ["PASSIVE", "FULL", "RESTART", "TRUNCATE"])
async def test_a_write_after_a_checkpoint_applies_to_the_next_lookup(
    tmp_path: Path, mode: str
) -> None:
    # After a checkpoint the next write restarts the WAL: the same number of frames as
    # before, in a new generation. Only the salts tell the two headers apart.
    path = tmp_path / "h.db"
    async with hot_on(path) as (_, hot):
        in_another_process(path, f"PRAGMA wal_checkpoint({mode})")
        assert await agent_of(hot) == "100"
        in_another_process(path, "UPDATE routes SET agent = '200'")
        assert await agent_of(hot) == "200"
        in_another_process(
            path, f"PRAGMA wal_checkpoint({mode})", "UPDATE routes SET agent = '100'"
        )
        assert await agent_of(hot) == "100"


async def test_a_restore_into_the_open_file_applies_to_the_next_lookup(tmp_path: Path) -> None:
    # The supported way to replace the content of a database in use: SQLite's backup API
    # (the sqlite3 shell's .restore), which commits through the WAL like any write.
    path, backup = tmp_path / "h.db", tmp_path / "backup.db"
    async with hot_on(path) as (_, hot):
        in_another_process(path, f"VACUUM INTO '{backup}'")
        with sqlite3.connect(backup) as db:
            db.execute("UPDATE routes SET agent = '500'")
        db.close()
        script = (
            "import sqlite3, sys\n"
            "source, target = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])\n"
            "source.backup(target)\n"
        )
        python(script, str(backup), str(path))
        assert await agent_of(hot) == "500"


async def test_without_a_wal_index_data_version_still_sees_changes(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with hot_on(path) as (inner, hot):
        inner._wal_watch = None  # as for a file SQLite could not put in WAL mode
        await agent_of(hot)
        in_another_process(path, "UPDATE routes SET agent = '200'")
        assert await agent_of(hot) == "200"


@pytest.mark.parametrize("victim", ["-shm", ""])
async def test_a_file_replaced_under_the_store_stops_answers_from_memory(
    tmp_path: Path, victim: str
) -> None:
    # Replacing the database or its -shm while it is open leaves SQLite's connections on the
    # old files (only a restart reads the new ones); what the layer can do is stop trusting
    # memory: the next lookup after the identity check reads SQLite, and nothing is kept.
    path = tmp_path / "h.db"
    async with hot_on(path) as (inner, hot):
        assert inner._wal_watch is not None
        inner._wal_watch._check_at = 0.0  # the once-a-second identity check is due
        replace_with_a_copy(Path(f"{path}{victim}"), tmp_path / "old")
        hits = hot.hits
        for _ in range(3):
            assert await agent_of(hot) == "100"  # what SQLite reads: the old file
        assert hot.hits == hits and len(hot) == 0
        assert inner._wal_watch.lost is not None and "replaced" in inner._wal_watch.lost


async def test_a_deleted_shm_stops_answers_from_memory(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with hot_on(path) as (inner, hot):
        assert inner._wal_watch is not None
        inner._wal_watch._check_at = 0.0
        os.unlink(f"{path}-shm")
        hits = hot.hits
        await agent_of(hot)
        await agent_of(hot)
        assert hot.hits == hits and len(hot) == 0
        assert inner.change_token_now() is None


async def test_hot_callers_are_answered_while_another_process_holds_the_read_locks(
    tmp_path: Path,
) -> None:
    # Every SQLite read then retries inside for about 10 s; the change check does not go
    # through SQLite, so a number in memory is answered at once.
    path = tmp_path / "h.db"
    async with hot_on(path) as (_, hot):
        hits = hot.hits
        async with Locker(path, "readers"):
            started = time.monotonic()
            assert await agent_of(hot) == "100"
            assert time.monotonic() - started < 1.0 and hot.hits == hits + 1
