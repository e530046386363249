"""The cache table in a real SQLite file: ages, background writes, eviction, restarts."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastagi_router.model import Customer
from fastagi_router.store import SQLiteStore
from fastagi_router.store.schema import MIGRATIONS
from fastagi_router.upstream import cache as cache_module
from fastagi_router.upstream.cache import (
    CacheEntry,
    CacheKey,
    CachePolicy,
    Freshness,
    UpstreamCache,
)

POLICY = CachePolicy(fresh_ttl=300, stale_ttl=3600, negative_ttl=60, max_stale=86400)
NUMBER = CacheKey("CL0000", "number", "+33123456789")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def customer(key: CacheKey = NUMBER, *destinations: str, vip: bool = False) -> Customer:
    slots = (*destinations, "", "", "", "")[:4]
    return Customer(
        account=key.account,
        customer_id=key.account,
        destinations=(slots[0], slots[1], slots[2], slots[3]),
        vip=vip,
        phone_numbers=(key.value,) if key.kind == "number" else (),
        code=key.value if key.kind == "code" else None,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(tmp_path: Path, clock: Clock) -> AsyncIterator[UpstreamCache]:
    c = await UpstreamCache.open(str(tmp_path / "router.db"), policy=POLICY, clock=clock)
    yield c
    await c.close()


@pytest.mark.parametrize(
    ("found", "age", "expected"),
    [
        (True, 0, Freshness.FRESH),
        (True, 299.9, Freshness.FRESH),
        (True, 300, Freshness.REFRESH),
        (True, 3599, Freshness.REFRESH),
        (True, 3600, Freshness.STALE),
        (True, 86400, Freshness.STALE),
        (True, 86401, Freshness.EXPIRED),
        (False, 59, Freshness.FRESH),
        (False, 60, Freshness.EXPIRED),
        (True, -100, Freshness.FRESH),  # the clock went back
    ],
)
def test_classify(found: bool, age: float, expected: Freshness) -> None:
    entry = CacheEntry(NUMBER, customer(NUMBER, "207") if found else None, 1000.0)
    assert POLICY.classify(entry, 1000.0 + age) is expected


def test_policy_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        CachePolicy(fresh_ttl=10, stale_ttl=5)


async def test_answers_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "router.db")
    code = CacheKey("CL0000", "code", "4242")
    unknown = CacheKey("CL0000", "number", "+33999999999")
    first = await UpstreamCache.open(path, policy=POLICY, clock=clock)
    first.put(CacheEntry(NUMBER, customer(NUMBER, "207", "209", vip=True), clock.now))
    first.put(CacheEntry(code, customer(code, "sales"), clock.now - 10))
    first.put(CacheEntry(unknown, None, clock.now))
    await first.close()
    second = await UpstreamCache.open(path, policy=POLICY, clock=clock)
    try:
        number_entry = await second.get(NUMBER)
        code_entry = await second.get(code)
        unknown_entry = await second.get(unknown)
    finally:
        await second.close()
    assert number_entry == CacheEntry(NUMBER, customer(NUMBER, "207", "209", vip=True), clock.now)
    assert code_entry is not None and code_entry.customer is not None
    assert code_entry.customer.code == "4242" and code_entry.fetched_at == clock.now - 10
    assert unknown_entry == CacheEntry(unknown, None, clock.now)


async def test_an_answer_is_readable_before_it_is_written(cache: UpstreamCache) -> None:
    entry = CacheEntry(NUMBER, customer(NUMBER, "207"), 1.0)
    cache.put(entry)
    assert await cache.get(NUMBER) is entry
    await cache.flush()
    assert await cache.get(NUMBER) == entry


async def test_answers_arriving_together_are_written_in_few_transactions(
    cache: UpstreamCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every commit empties the hot layer of every process: answers are written at most
    # once per WRITE_INTERVAL, and a flush still writes at once.
    monkeypatch.setattr(cache_module, "WRITE_INTERVAL", 0.3)
    transactions: list[int] = []
    write = cache._write

    async def counted(batch: list[CacheEntry]) -> None:
        transactions.append(len(batch))
        await write(batch)

    monkeypatch.setattr(cache, "_write", counted)
    keys = [CacheKey("CL0000", "number", f"+3310000{n:04d}") for n in range(20)]
    for key in keys:
        cache.put(CacheEntry(key, None, 1.0))
        await asyncio.sleep(0.01)  # 20 answers over 0.2 s
    await asyncio.sleep(0.35)
    assert sum(transactions) == 20 and len(transactions) <= 2, transactions
    assert None not in [await cache.get(key) for key in keys]
    cache.put(CacheEntry(NUMBER, None, 1.0))
    async with asyncio.timeout(0.2):  # well within WRITE_INTERVAL
        await cache.flush()
    assert transactions[-1] == 1 and sum(transactions) == 21


async def test_a_call_never_waits_on_a_write(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "router.db")
    cache = await UpstreamCache.open(path, policy=POLICY, clock=clock, busy_timeout_ms=30000)
    other = CacheKey("CL0000", "number", "+33100000000")
    cache.put(CacheEntry(other, None, clock.now))
    await cache.flush()
    # Another process holds the write lock (an import, a purge): reads and puts go on.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        entry = CacheEntry(NUMBER, customer(NUMBER, "207"), clock.now)
        cache.put(entry)
        assert await cache.get(NUMBER) is entry
        assert await cache.get(other) == CacheEntry(other, None, clock.now)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    await cache.flush()
    assert await cache.get(NUMBER) == entry
    await cache.close()


async def test_an_older_answer_does_not_replace_a_newer_one(cache: UpstreamCache) -> None:
    newer = CacheEntry(NUMBER, customer(NUMBER, "new"), 2000.0)
    cache.put(newer)
    await cache.flush()
    cache.put(CacheEntry(NUMBER, customer(NUMBER, "old"), 1000.0))
    await cache.flush()
    assert await cache.get(NUMBER) == newer


async def test_size_is_bounded_oldest_fetched_go_first(tmp_path: Path, clock: Clock) -> None:
    cache = await UpstreamCache.open(
        str(tmp_path / "router.db"), policy=POLICY, clock=clock, max_entries=10
    )
    keys = [CacheKey("CL0000", "number", f"+3310000{n:04d}") for n in range(25)]
    try:
        for n, key in enumerate(keys):
            cache.put(CacheEntry(key, customer(key, "207"), clock.now + n))
            await cache.flush()
        page = await cache.entries(None, 100, 0)
    finally:
        await cache.close()
    kept = {e.key for e in page.items}
    assert page.total <= 10
    assert keys[-1] in kept and keys[0] not in kept
    newest_dropped = max(n for n, k in enumerate(keys) if k not in kept)
    assert all(k in kept for k in keys[newest_dropped + 1 :])


async def test_unusable_entries_are_swept(tmp_path: Path, clock: Clock) -> None:
    cache = await UpstreamCache.open(
        str(tmp_path / "router.db"), policy=POLICY, clock=clock, sweep_interval=0
    )
    old = CacheKey("CL0000", "number", "+33100000001")
    negative = CacheKey("CL0000", "number", "+33100000002")
    stale = CacheKey("CL0000", "number", "+33100000003")
    try:
        cache.put(CacheEntry(old, customer(old, "1"), clock.now - 86401))
        cache.put(CacheEntry(negative, None, clock.now - 61))
        cache.put(CacheEntry(stale, customer(stale, "3"), clock.now - 80000))
        await cache.flush()
        clock.now += 1
        cache.put(CacheEntry(NUMBER, customer(NUMBER, "207"), clock.now))
        await cache.flush()
        left = {e.key for e in (await cache.entries(None, 100, 0)).items}
    finally:
        await cache.close()
    assert left == {stale, NUMBER}


async def test_find_delete_and_purge(cache: UpstreamCache, clock: Clock) -> None:
    other_account = CacheKey("CL0001", "number", NUMBER.value)
    code = CacheKey("CL0000", "code", "4242")
    for key in (NUMBER, other_account, code):
        cache.put(CacheEntry(key, customer(key, "207"), clock.now))
    await cache.flush()
    assert [e.key for e in await cache.find("number", NUMBER.value)] == [NUMBER, other_account]
    assert [e.key for e in await cache.find("number", NUMBER.value, "CL0001")] == [other_account]
    assert await cache.delete("number", NUMBER.value, "CL0001") == 1
    assert await cache.get(other_account) is None
    assert await cache.get(NUMBER) is not None
    assert await cache.purge("CL0000") == 2
    assert (await cache.entries(None, 10, 0)).total == 0
    cache.put(CacheEntry(code, None, clock.now))
    assert await cache.purge() == 0  # the unwritten entry goes too
    await cache.flush()
    assert await cache.get(code) is None


async def test_an_entry_edited_into_nonsense_reads_as_missing(
    cache: UpstreamCache, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    cache.put(CacheEntry(NUMBER, customer(NUMBER, "207"), clock.now))
    await cache.flush()
    with sqlite3.connect(cache.path) as db:
        db.execute("UPDATE upstream_cache SET destination1 = '207,hangup'")
    assert await cache.get(NUMBER) is None
    assert "unreadable" in caplog.text
    assert (await cache.entries(None, 10, 0)).items == []


async def test_a_version_1_store_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0].statements:
            db.execute(statement)
        db.execute(
            "INSERT INTO routes (account, phone_number, number_key, agent, created_at, "
            "updated_at) VALUES ('default', '0899990988', '+84899990988', '104', 'x', 'x')"
        )
        db.execute("PRAGMA user_version = 1")
    cache = await UpstreamCache.open(path, policy=POLICY)
    await cache.close()
    store = await SQLiteStore.open(path)
    try:
        route = await store.get_route("default", number_key="+84899990988")
    finally:
        await store.close()
    assert route is not None and route.agent == "104"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 2


async def test_a_full_queue_drops_answers_not_calls(
    cache: UpstreamCache, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "MAX_PENDING", 3)
    for n in range(5):
        key = CacheKey("CL0000", "number", f"+331000000{n:02d}")
        cache.put(CacheEntry(key, None, clock.now))
    dropped = cache._metrics.value("upstream_cache_writes_total", outcome="dropped")
    await cache.flush()
    assert dropped == 2
    assert (await cache.entries(None, 10, 0)).total == 3


def test_key_kind_is_checked() -> None:
    with pytest.raises(ValueError):
        CacheKey("CL0000", "email", "x@example.com")


async def test_logging_is_quiet_on_the_happy_path(
    cache: UpstreamCache, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fastagi_router")
    cache.put(CacheEntry(NUMBER, customer(NUMBER, "207"), clock.now))
    await cache.flush()
    assert await cache.get(NUMBER) is not None
    assert caplog.records == []
