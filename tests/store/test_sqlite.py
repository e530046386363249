"""The SQLite store on a real file: schema, lookups, account fallback, atomic imports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fastagi_router.errors import ConflictError, StoreError
from fastagi_router.model import Customer
from fastagi_router.store import SQLiteStore
from fastagi_router.store.schema import LATEST_VERSION


def customer(
    cid: str,
    numbers: tuple[str, ...] = (),
    code: str | None = None,
    account: str = "default",
    dest: str = "q1",
) -> Customer:
    return Customer(
        account=account,
        customer_id=cid,
        phone_numbers=numbers,
        code=code,
        destinations=(dest, "", "", ""),
    )


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = await SQLiteStore.open(str(tmp_path / "r.db"))
    yield s
    await s.close()


async def test_new_file_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    s = await SQLiteStore.open(str(path))
    await s.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"routes", "customers", "customer_numbers"} <= tables
    db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore.open(str(path))


async def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        await SQLiteStore.open(str(path))


async def test_route_upsert_keeps_id_and_created_at(store: SQLiteStore) -> None:
    first = await store.set_route("default", "0899990988", "+84899990988", "101")
    second = await store.set_route("default", "+84899990988", "+84899990988", "104")
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert second.agent == "104"
    assert second.phone_number == "+84899990988"
    assert second.description == "104"  # a defaulted note follows the agent
    page = await store.list_routes("default", 10, 0)
    assert page.total == 1


async def test_description_defaults_to_agent(store: SQLiteStore) -> None:
    route = await store.set_route("default", "0899990988", "+84899990988", "101")
    assert route.description == "101"
    noted = await store.set_route(
        "default", "0899990988", "+84899990988", "102", description="VIP desk"
    )
    assert noted.description == "VIP desk"
    moved = await store.set_route("default", "0899990988", "+84899990988", "103")
    assert moved.description == "VIP desk"  # a note that was set is kept


async def test_lookup_prefers_the_account_then_default(store: SQLiteStore) -> None:
    await store.set_route("default", "x", "+1", "100")
    await store.set_route("A", "x", "+1", "200")
    await store.import_customers([customer("D", ("+1",)), customer("E", ("+1",), account="B")])
    a = await store.lookup_number("A", "+1")
    b = await store.lookup_number("B", "+1")
    c = await store.lookup_number("C", "+1")
    assert a.route is not None and a.route.agent == "200"
    assert a.customer is not None and a.customer.customer_id == "D"
    assert b.route is not None and b.route.agent == "100"
    assert b.customer is not None and b.customer.customer_id == "E"
    assert c.route is not None and c.route.agent == "100"
    none = await store.lookup_number("A", "+2")
    assert none.route is None and none.customer is None


async def test_code_lookup_with_fallback(store: SQLiteStore) -> None:
    await store.import_customers([customer("D", code="11"), customer("E", code="11", account="B")])
    b = await store.lookup_code("B", "11")
    z = await store.lookup_code("Z", "11")
    assert b is not None and b.customer_id == "E"
    assert z is not None and z.customer_id == "D"
    assert await store.lookup_code("B", "12") is None


async def test_import_is_all_or_nothing(store: SQLiteStore) -> None:
    await store.import_customers([customer("A", ("+1",), "10")])
    batch = [customer("B", ("+2",)), customer("C", ("+1",)), customer("D", ("+4",))]
    with pytest.raises(ConflictError) as err:
        await store.import_customers(batch)
    assert err.value.index == 1
    assert err.value.field == "phone_numbers"
    assert "customer A" in err.value.message
    assert await store.get_customer("default", "B") is None
    assert (await store.list_customers(None, 10, 0)).total == 1


async def test_import_code_conflict_is_named(store: SQLiteStore) -> None:
    await store.import_customers([customer("A", code="10")])
    with pytest.raises(ConflictError) as err:
        await store.import_customers([customer("B", code="10")])
    assert err.value.field == "code"


async def test_batch_may_swap_numbers_between_its_customers(store: SQLiteStore) -> None:
    await store.import_customers([customer("A", ("+1",)), customer("B", ("+2",))])
    await store.import_customers([customer("A", ("+2",)), customer("B", ("+1",))])
    one = await store.lookup_number("default", "+1")
    assert one.customer is not None and one.customer.customer_id == "B"


async def test_upsert_replaces_numbers_and_delete_cascades(store: SQLiteStore) -> None:
    await store.upsert_customer(customer("A", ("+1", "+2"), "10"))
    updated = await store.upsert_customer(customer("A", ("+3",), None, dest="q9"))
    assert updated.phone_numbers == ("+3",)
    assert updated.code is None
    assert updated.destinations[0] == "q9"
    assert (await store.lookup_number("default", "+1")).customer is None
    assert await store.delete_customer("default", "A")
    assert not await store.delete_customer("default", "A")
    assert (await store.lookup_number("default", "+3")).customer is None


async def test_delete_route_by_key_or_id(store: SQLiteStore) -> None:
    r = await store.set_route("default", "x", "+1", "100")
    await store.set_route("default", "y", "+2", "100")
    assert r.id is not None
    assert await store.delete_route("default", route_id=r.id)
    assert await store.delete_route("default", number_key="+2")
    assert not await store.delete_route("default", number_key="+2")
    with pytest.raises(ValueError):
        await store.delete_route("default")


async def test_pagination(store: SQLiteStore) -> None:
    for n in range(25):
        await store.set_route("default", str(n), f"+1{n:03d}", "100")
    page = await store.list_routes(None, 10, 20)
    assert page.total == 25
    assert [r.number_key for r in page.items] == [f"+1{n:03d}" for n in range(20, 25)]


async def test_changes_persist_and_are_seen_by_another_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    reader = await SQLiteStore.open(path)
    writer = await SQLiteStore.open(path)
    try:
        version = await reader.data_version()
        assert (await reader.lookup_number("default", "+1")).route is None
        await writer.set_route("default", "x", "+1", "100")
        assert await reader.data_version() != version
        match = await reader.lookup_number("default", "+1")
        assert match.route is not None and match.route.agent == "100"
    finally:
        await reader.close()
        await writer.close()
    reopened = await SQLiteStore.open(path)
    try:
        assert (await reopened.lookup_number("default", "+1")).route is not None
    finally:
        await reopened.close()


async def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    s = await SQLiteStore.open(str(tmp_path / "c.db"))
    await s.close()
    with pytest.raises(StoreError):
        await s.lookup_number("default", "+1")


class _BusyConnection:
    """Stands for the loop-thread connection when SQLite answers SQLITE_BUSY."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, sql: str, params: object) -> None:
        self.calls += 1
        raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


async def test_busy_fast_read_falls_back_to_the_thread(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "busy.db"))
    try:
        await store.set_route("default", "x", "+1", "100")
        busy = _BusyConnection()
        store._fast = busy  # type: ignore[assignment]
        match = await store.lookup_number("default", "+1")
        assert match.route is not None and match.route.agent == "100"
        assert busy.calls == 1 and store.fast_fallbacks == 1  # tried once, then the thread
    finally:
        await store.close()


async def test_reads_do_not_wait_for_an_open_write(tmp_path: Path) -> None:
    path = tmp_path / "writing.db"
    store = await SQLiteStore.open(str(path))
    try:
        await store.set_route("default", "x", "+1", "100")
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE routes SET agent = '999'")
        try:
            match = await store.lookup_number("default", "+1")
            assert match.route is not None and match.route.agent == "100"
            assert store.fast_fallbacks == 0
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    finally:
        await store.close()


async def test_slow_path_gives_the_same_answers(tmp_path: Path) -> None:
    path = str(tmp_path / "same.db")
    fast = await SQLiteStore.open(path)
    slow = await SQLiteStore.open(path, fast_reads=False)
    try:
        await fast.set_route("A", "x", "+1", "200")
        await fast.import_customers([customer("D", ("+1",), "77"), customer("E", ("+2",))])
        for account in ("A", "B", "default"):
            for key in ("+1", "+2", "+3"):
                assert await fast.lookup_number(account, key) == await slow.lookup_number(
                    account, key
                )
            assert await fast.lookup_code(account, "77") == await slow.lookup_code(account, "77")
    finally:
        await fast.close()
        await slow.close()
