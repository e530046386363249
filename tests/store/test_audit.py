"""The audit log, erasure and expiry in the SQLite store.

Every audited write and its entry are committed together or not at all; an erasure finds a
number however it was written, leaves the other callers alone and keeps no trace of the
number; expiry deletes learned routes only.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from fastagi_router.errors import ConflictError, StoreError
from fastagi_router.model import REDACTED, Customer
from fastagi_router.phone import NumberParser
from fastagi_router.store import SQLiteStore
from fastagi_router.store.audit import parse_time, timestamp
from fastagi_router.store.base import AuditQuery
from fastagi_router.upstream.cache import CacheEntry, CacheKey, CachePolicy, UpstreamCache

KEY = "+84899990988"
OTHER = "+84899990977"
NUMBERS = NumberParser("VN")
ALL_SPELLINGS = NUMBERS.spellings(NUMBERS.parse("0899990988"))


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = await SQLiteStore.open(str(tmp_path / "r.db"))
    yield s
    await s.close()


def file_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


async def entries(store: SQLiteStore, **query: object) -> list[tuple[object, ...]]:
    page = await store.list_audit(AuditQuery(**query))  # type: ignore[arg-type]
    return [(e.actor, e.action, e.account, e.target, e.detail) for e in page.items]


def test_every_spelling_of_a_number_is_erased() -> None:
    assert set(ALL_SPELLINGS) == {KEY, "84899990988", "0084899990988", "0899990988"}
    assert ALL_SPELLINGS[0] == KEY


async def test_writes_with_an_actor_are_audited_newest_first(store: SQLiteStore) -> None:
    await store.set_route("A", "0899990988", KEY, "104", actor="api:crm")
    await store.set_route("A", "0899990988", KEY, "105", actor="cli:root")
    await store.upsert_customer(Customer("A", "C1", phone_numbers=(KEY,), code="1234"), actor="x")
    await store.upsert_customer(Customer("A", "C1", phone_numbers=(KEY,)), actor="x")
    await store.import_customers(
        [Customer("A", "C2"), Customer("B", "C3"), Customer("A", "C4")], actor="x", note="n=1"
    )
    assert await store.delete_customer("A", "C2", actor="x")
    assert not await store.delete_customer("A", "C2", actor="x")  # nothing: not audited
    assert await store.delete_route("A", number_key=KEY, actor="api:crm")
    # Unaudited writes (learning) leave no entry.
    await store.learn_route("A", "0899990977", OTHER, "106")
    await store.set_route("A", "0899990977", OTHER, "106")
    assert await entries(store) == [
        ("api:crm", "route.delete", "A", KEY, "agent=105"),
        ("x", "customer.delete", "A", "C2", ""),
        ("x", "customers.import", "B", "", "customers=1 n=1"),
        ("x", "customers.import", "A", "", "customers=2 n=1"),
        ("x", "customer.upsert", "A", "C1", "replaced numbers=1 code=no"),
        ("x", "customer.upsert", "A", "C1", "created numbers=1 code=yes"),
        ("cli:root", "route.update", "A", KEY, "agent=104->105"),
        ("api:crm", "route.create", "A", KEY, "agent=104"),
    ]
    page = await store.list_audit(AuditQuery())
    assert all(e.at and e.id for e in page.items)
    # No entry holds a code or a number outside its target.
    assert all("1234" not in e.detail and "899990" not in e.detail for e in page.items)


async def test_a_refused_write_leaves_no_entry(store: SQLiteStore) -> None:
    await store.upsert_customer(Customer("A", "C1", phone_numbers=(KEY,)), actor="x")
    with pytest.raises(ConflictError):
        await store.upsert_customer(Customer("A", "C2", phone_numbers=(KEY,)), actor="x")
    with pytest.raises(ConflictError):
        await store.import_customers([Customer("A", "C3", phone_numbers=(KEY,))], actor="x")
    assert [e[1] for e in await entries(store)] == ["customer.upsert"]


async def test_an_entry_that_cannot_be_written_undoes_the_change(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = await SQLiteStore.open(str(path))
    try:
        db = sqlite3.connect(path)
        db.execute("ALTER TABLE audit_log RENAME TO gone")
        db.commit()
        with pytest.raises(StoreError, match="audit_log"):
            await store.set_route("A", "0899990988", KEY, "104", actor="x")
        with pytest.raises(StoreError, match="audit_log"):
            await store.import_customers([Customer("A", "C1")], actor="x")
        await store.import_customers([Customer("A", "C9")])
        with pytest.raises(StoreError, match="audit_log"):
            await store.delete_customer("A", "C9", actor="x")
        assert await store.get_customer("A", "C9") is not None
        assert await store.get_route("A", number_key=KEY) is None
        assert await store.get_customer("A", "C1") is None
        # Without an actor nothing is audited, and the write goes through.
        await store.set_route("A", "0899990988", KEY, "104")
        assert await store.get_route("A", number_key=KEY) is not None
        with pytest.raises(StoreError, match="audit_log"):
            await store.erase_caller(ALL_SPELLINGS, None, actor="x")
        assert await store.get_route("A", number_key=KEY) is not None
        db.close()
    finally:
        await store.close()


async def test_filters_and_paging(store: SQLiteStore) -> None:
    for agent in ("1", "2", "3"):
        await store.set_route("A", "0899990988", KEY, agent, actor="api:a")
    await store.set_route("B", "0899990988", KEY, "9", actor="cli:b")
    assert len(await entries(store, accounts=frozenset({"A"}))) == 3
    assert len(await entries(store, accounts=frozenset())) == 0
    assert len(await entries(store, actor="cli:b")) == 1
    assert len(await entries(store, action="route.update")) == 2
    page = await store.list_audit(AuditQuery(limit=2, offset=1))
    assert page.total == 4 and len(page.items) == 2
    now = timestamp(time.time())
    assert len(await entries(store, until=now)) <= 4
    assert await entries(store, since=timestamp(time.time() + 60)) == []


def test_times_are_read_in_the_usual_forms() -> None:
    assert parse_time("2026-11-26", "since") == "2026-11-26 00:00:00"
    assert parse_time("2026-11-26T10:20:30Z", "since") == "2026-11-26 10:20:30"
    assert parse_time("2026-11-26 10:20", "since") == "2026-11-26 10:20:00"
    for bad in ("yesterday", "2026-13-01", "2026-11-26T25:00:00", "2026-11-26 10:20:30+02:00"):
        with pytest.raises(Exception, match="since"):
            parse_time(bad, "since")


async def test_erasure_removes_the_number_everywhere_and_nothing_else(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store.set_route("A", "0899990988", KEY, "104", actor="api:crm")
    await store.set_route("B", "0084899990988", KEY, "105", actor="api:crm")
    await store.set_route("A", "0899990977", OTHER, "106", actor="api:crm")
    await store.import_customers(
        [
            Customer("A", "SOLO", phone_numbers=(KEY,), code="1111"),
            Customer("B", "ACME", phone_numbers=(KEY, OTHER)),
        ],
        actor="x",
    )
    cache = await UpstreamCache.open(store.path, policy=CachePolicy())
    for key in (CacheKey("A", "number", KEY), CacheKey("B", "number", KEY)):
        cache.put(CacheEntry(key, None, time.time()))
    cache.put(CacheEntry(CacheKey("A", "number", OTHER), None, time.time()))
    await cache.flush()

    erasure = await store.erase_caller(ALL_SPELLINGS, None, actor="cli:root")

    assert erasure.counts() == {
        "routes": 2,
        "customer_numbers": 2,
        "customers": 1,
        "cache_entries": 2,
        "audit_entries": 2,
    }
    assert await store.get_route("A", number_key=KEY) is None
    assert await store.get_route("B", number_key=KEY) is None
    assert await store.get_route("A", number_key=OTHER) is not None
    assert await store.get_customer("A", "SOLO") is None
    acme = await store.get_customer("B", "ACME")
    assert acme is not None and acme.phone_numbers == (OTHER,)
    assert await cache.get(CacheKey("A", "number", KEY)) is None
    assert await cache.get(CacheKey("A", "number", OTHER)) is not None
    await cache.close()
    log = await entries(store)
    assert log[0] == (
        "cli:root",
        "caller.erase",
        None,
        "",
        "routes=2 customer_numbers=2 customers=1 cache_entries=2 audit_entries=2",
    )
    assert [e[3] for e in log].count(REDACTED) == 2
    assert [e[3] for e in log].count(OTHER) == 1
    # Not a byte of the file holds the number any more, free pages included.
    await store.close()
    content = file_bytes(store.path)
    assert b"899990988" not in content
    assert b"899990977" in content


async def test_erasure_in_one_account_leaves_the_others(store: SQLiteStore) -> None:
    await store.set_route("A", "0899990988", KEY, "104", actor="x")
    await store.set_route("B", "0899990988", KEY, "105", actor="x")
    erasure = await store.erase_caller(ALL_SPELLINGS, "A", actor="x")
    assert (erasure.routes, erasure.audit_entries) == (1, 1)
    assert await store.get_route("B", number_key=KEY) is not None
    assert [e[3] for e in await entries(store, accounts=frozenset({"B"}))] == [KEY]


async def test_erasing_an_unknown_number_is_audited_with_zero_counts(store: SQLiteStore) -> None:
    erasure = await store.erase_caller(ALL_SPELLINGS, None, actor="x")
    assert erasure.total == 0
    assert (await entries(store))[0][1] == "caller.erase"


async def test_expiry_deletes_learned_routes_only(store: SQLiteStore) -> None:
    await store.learn_route("A", "0899990988", KEY, "104")
    await store.learn_route("B", "0899990977", OTHER, "105")
    await store.set_route("A", "0899990977", OTHER, "106")  # manual: never expires
    future = timestamp(time.time() + 60)
    assert await store.expire_learned(timestamp(time.time() - 60), actor="system:expiry") == 0
    assert await store.expire_learned(future, actor="system:expiry") == 2
    assert await store.get_route("A", number_key=KEY) is None
    assert await store.get_route("A", number_key=OTHER) is not None
    assert [(e[0], e[1], e[2], e[4][:8]) for e in await entries(store)] == [
        ("system:expiry", "route.expire", "B", "routes=1"),
        ("system:expiry", "route.expire", "A", "routes=1"),
    ]


async def test_prune_deletes_old_entries(store: SQLiteStore) -> None:
    await store.set_route("A", "0899990988", KEY, "104", actor="x")
    assert await store.prune_audit(timestamp(time.time() - 60)) == 0
    assert await store.prune_audit(timestamp(time.time() + 60)) == 1
    assert await entries(store) == []
