"""`SQLiteStore`: the embedded store, one SQLite file in WAL mode, through aiosqlite.

Two connections: one for reads (routing, listings) and one for writes, so a long import
never makes a call wait behind it (WAL readers do not block on the writer) and a read never
sees a write half done. Writes are serialised by a lock and run in ``BEGIN IMMEDIATE``
transactions; ``synchronous=NORMAL`` in WAL mode keeps every committed write across a crash
of the process (not across a power cut of the host; see docs).

Several processes (``serve`` and the CLI) can use the same file at once; a change committed
by one is seen by the next read of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import aiosqlite

from fastagi_router.errors import ConflictError, StoreError
from fastagi_router.model import (
    DEFAULT_ACCOUNT,
    AuditEntry,
    Customer,
    NumberMatch,
    Route,
)
from fastagi_router.store import audit, erasure
from fastagi_router.store.base import AuditQuery, Erasure, LearnOutcome, Page
from fastagi_router.store.schema import LATEST_VERSION, MIGRATIONS
from fastagi_router.store.walindex import WalIndexWatch

_ROUTE_COLUMNS = (
    "id, account, phone_number, number_key, agent, description, origin, "
    "created_at, updated_at, last_seen_at"
)
_CUSTOMER_COLUMNS = (
    "c.account, c.customer_id, c.name, c.code, c.destination1, c.destination2, "
    "c.destination3, c.destination4, c.vip, c.oncall, "
    "(SELECT group_concat(number_key, ';') FROM customer_numbers AS n "
    " WHERE n.account = c.account AND n.customer_id = c.customer_id) AS numbers"
)
# The reads that answer a call. Each prefers the call's account over `default`; UNION ALL
# with LIMIT 1 stops at the first hit and, unlike ORDER BY, needs no temporary b-tree. A
# learned route not seen since :since is skipped in the same read, so that an expired entry
# of the account lets `default`'s apply.
_ROUTE_FOR = f"""
SELECT {_ROUTE_COLUMNS} FROM routes WHERE number_key = :key AND account = :account
  AND (origin = 'manual' OR :since IS NULL OR coalesce(last_seen_at, updated_at) >= :since)
"""  # noqa: S608
_LOOKUP_ROUTE = f"""
{_ROUTE_FOR}
UNION ALL
{_ROUTE_FOR.replace(":account", f"'{DEFAULT_ACCOUNT}'")}
LIMIT 1
"""
_CUSTOMER_BY_NUMBER = f"""
SELECT {_CUSTOMER_COLUMNS} FROM customer_numbers AS m
JOIN customers AS c ON c.account = m.account AND c.customer_id = m.customer_id
WHERE m.number_key = :key AND m.account = :account
"""  # noqa: S608
_LOOKUP_CUSTOMER = f"""
{_CUSTOMER_BY_NUMBER}
UNION ALL
{_CUSTOMER_BY_NUMBER.replace(":account", f"'{DEFAULT_ACCOUNT}'")}
LIMIT 1
"""
_CUSTOMER_BY_CODE = f"""
SELECT {_CUSTOMER_COLUMNS} FROM customers AS c WHERE c.code = :code AND c.account = :account
"""  # noqa: S608
_LOOKUP_CODE = f"""
{_CUSTOMER_BY_CODE}
UNION ALL
{_CUSTOMER_BY_CODE.replace(":account", f"'{DEFAULT_ACCOUNT}'")}
LIMIT 1
"""


log = logging.getLogger("fastagi_router.store")

#: Longest wait for the file, per read and per write (see `SQLiteStore.open`).
DEFAULT_BUSY_TIMEOUT_MS = 5000
#: A read on the event loop's thread takes microseconds; one that took this long waited
#: inside SQLite, and the loop stood still meanwhile (see `SQLiteStore._fast_fetch`).
FAST_READ_LIMIT_S = 0.05
#: How long loop-thread reads then pause: first, and at most (doubling in between).
FAST_PAUSE_S = (5.0, 300.0)
#: `ping` (the readiness probe) answers within this, whatever the busy timeout.
PING_TIMEOUT_MS = 1000
#: A write that waited less than this for the lock keeps SQLite's full busy timeout (saves
#: two PRAGMA round trips when there is no contention worth the name).
_SHORTEN_AFTER_MS = 50


def _now() -> str:
    return _timestamp(time.time())


def _lookup_params(account: str, number_key: str, learned_since: float | None) -> dict[str, Any]:
    since = _timestamp(learned_since) if learned_since is not None else None
    return {"key": number_key, "account": account, "since": since}


_timestamp = audit.timestamp


def _route(row: Sequence[Any]) -> Route:
    return Route(
        id=row[0],
        account=row[1],
        phone_number=row[2],
        number_key=row[3],
        agent=row[4],
        description=row[5],
        origin=row[6],
        created_at=row[7],
        updated_at=row[8],
        last_seen_at=row[9],
    )


def _customer(row: Sequence[Any]) -> Customer:
    return Customer(
        account=row[0],
        customer_id=row[1],
        name=row[2],
        code=row[3],
        destinations=(row[4], row[5], row[6], row[7]),
        vip=bool(row[8]),
        oncall=bool(row[9]),
        phone_numbers=tuple(sorted(row[10].split(";"))) if row[10] else (),
    )


@contextlib.contextmanager
def _translated(action: str) -> Any:
    """Turn sqlite3's errors into `StoreError`, naming what was being done."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"store: {action} failed: {exc}") from exc
    except ValueError as exc:  # aiosqlite: "no active connection"
        raise StoreError(f"store: {action} failed: {exc}") from exc


class SQLiteStore:
    """The `Store` on one SQLite file. Create it with `SQLiteStore.open`."""

    def __init__(
        self,
        path: str,
        reader: aiosqlite.Connection,
        writer: aiosqlite.Connection,
        fast: sqlite3.Connection | None = None,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        wal_watch: WalIndexWatch | None = None,
    ):
        self.path = path
        self._reader = reader
        self._writer = writer
        self._fast = fast
        self._wal_watch = wal_watch
        self._write_lock = asyncio.Lock()
        self._busy_timeout_ms = busy_timeout_ms
        self._fast_resume_at = 0.0
        self._fast_pause = FAST_PAUSE_S[0]
        self.fast_fallbacks = 0
        #: Loop-thread reads that took longer than `FAST_READ_LIMIT_S`.
        self.fast_stalls = 0

    @classmethod
    async def open(
        cls, path: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, fast_reads: bool = True
    ) -> SQLiteStore:
        """Open (creating if needed) and migrate the store at ``path``.

        ``busy_timeout_ms`` bounds every wait for the file: a write waits at most that long
        in all (for this store's other writes, then for other processes' locks), a read
        through the thread at most that long too; then `StoreError`.

        With ``fast_reads``, the two routing reads run synchronously on the event loop's
        thread: an indexed point read takes microseconds, less than the thread hop of an
        aiosqlite call. That connection never waits for a lock (``busy_timeout = 0``); when
        SQLite says busy, the read goes through the aiosqlite thread instead, so a lock
        held elsewhere can never stall the loop.

        Raises `StoreError` when the file cannot be opened, is not a database, or was written
        by a newer version of the router.
        """
        with _translated(f"opening {path}"):
            writer = await aiosqlite.connect(path, isolation_level=None)
            try:
                await _configure(writer, busy_timeout_ms)
                modes = list(await writer.execute_fetchall("PRAGMA journal_mode = WAL"))
                await _migrate(writer, path)
                names = list(await writer.execute_fetchall("PRAGMA database_list"))
                reader = await aiosqlite.connect(path, isolation_level=None)
                await _configure(reader, busy_timeout_ms)
            except BaseException:
                await writer.close()
                raise
            fast = _fast_connection(path) if fast_reads else None
            watch = _wal_watch(str(modes[0][0]), names) if fast is not None else None
        return cls(path, reader, writer, fast, busy_timeout_ms=busy_timeout_ms, wal_watch=watch)

    async def close(self) -> None:
        """Close every connection (the change watch first: it reads the ``-shm`` only while
        SQLite's connections hold it open)."""
        if self._wal_watch is not None:
            self._wal_watch.close()
            self._wal_watch = None
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        for conn in (self._reader, self._writer):
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.close()

    @contextlib.asynccontextmanager
    async def _writing(self, action: str) -> AsyncIterator[None]:
        """Hold the write lock, having waited for it and for SQLite's lock together at most
        the busy timeout.

        Writes queue on the lock; without a shared budget, each would wait out a full busy
        timeout behind a lock held by another process, one after the other (the tenth
        REST API write would answer after ten of them). The time spent on the lock is
        taken off SQLite's busy timeout for this one transaction.
        """
        budget = self._busy_timeout_ms / 1000
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget):
                await self._write_lock.acquire()
        except TimeoutError as exc:
            raise StoreError(
                f"store: {action} failed: the store stayed busy for {self._busy_timeout_ms} ms"
            ) from exc
        try:
            left_ms = int((budget - (time.monotonic() - started)) * 1000)
            shortened = left_ms < self._busy_timeout_ms - _SHORTEN_AFTER_MS
            if shortened:
                if left_ms <= 0:
                    raise StoreError(
                        f"store: {action} failed: the store stayed busy for "
                        f"{self._busy_timeout_ms} ms"
                    )
                with _translated(action):
                    await self._writer.execute(f"PRAGMA busy_timeout = {left_ms}")
            try:
                yield
            finally:
                if shortened:
                    with contextlib.suppress(sqlite3.Error, ValueError):
                        await self._writer.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        finally:
            self._write_lock.release()

    @contextlib.asynccontextmanager
    async def _transaction(
        self, action: str, *, secure_delete: bool = False
    ) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction. With ``secure_delete``, what it deletes is overwritten in
        the file rather than left in free pages (an erasure), and a checkpoint follows."""
        async with self._writing(action):
            with _translated(action):
                await self._writer.execute("BEGIN IMMEDIATE")
                try:
                    if secure_delete:
                        await self._writer.execute("PRAGMA secure_delete = ON")
                    yield self._writer
                    await self._writer.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise
                finally:
                    if secure_delete:
                        with contextlib.suppress(sqlite3.Error, ValueError):
                            await self._writer.execute("PRAGMA secure_delete = OFF")
            if secure_delete:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    # Best effort, never waiting on readers: until a checkpoint copies the
                    # overwritten pages into the main file, it still holds the old ones.
                    await self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _rollback(self) -> None:
        """Roll back the writer's transaction, if one is still open.

        After SQLITE_FULL or an I/O error SQLite may have rolled it back already: ROLLBACK
        then fails ("no transaction is active"), and that failure must not replace the
        error that got us here ("database or disk is full") in what the caller reports.
        """
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._writer.execute("ROLLBACK")

    async def _read(
        self, action: str, sql: str, params: Any = (), *, timeout_ms: int | None = None
    ) -> Iterable[sqlite3.Row]:
        # Reads queue on the reader's thread as writes do on the lock: the caller's wait is
        # bounded as a whole (a read abandoned here has no transaction to leave open).
        limit = timeout_ms if timeout_ms is not None else self._busy_timeout_ms
        try:
            async with asyncio.timeout(limit / 1000):
                with _translated(action):
                    return await self._reader.execute_fetchall(sql, params)
        except TimeoutError as exc:
            raise StoreError(f"store: {action} failed: no answer within {limit} ms") from exc

    # -- routing reads ---------------------------------------------------------------------

    async def _slow_read(self, action: str, sql: str, params: dict[str, Any]) -> Any:
        """Return the first row of a read through the aiosqlite thread (or None)."""
        rows = list(await self._read(action, sql, params))
        return rows[0] if rows else None

    def _fast_fetch(self, *queries: tuple[str, Any]) -> list[Any] | None:
        """The first row (or None) of each query, read on the event loop's thread; None
        when that cannot be done now: no such connection, SQLite busy, or paused.

        ``busy_timeout = 0`` keeps SQLite from waiting on a lock, but not from retrying
        inside: a process holding the WAL-index read locks makes every read retry for
        about 10 s (then "locking protocol"), and the loop, with every call on it, would
        stand still that long. So a read that takes longer than `FAST_READ_LIMIT_S`
        pauses the loop-thread reads (`FAST_PAUSE_S`, doubling while it happens again):
        meanwhile reads go through the thread, where the callers' waits are bounded.
        """
        fast = self._fast
        if fast is None:
            return None
        started = time.monotonic()
        if started < self._fast_resume_at:
            return None
        try:
            return [fast.execute(sql, params).fetchone() for sql, params in queries]
        except sqlite3.Error as exc:
            # Busy or locked: never wait on the loop's thread; take the slow road.
            self.fast_fallbacks += 1
            log.debug("fast read failed (%s); reading through the thread", exc)
            return None
        finally:
            took = time.monotonic() - started
            if took > FAST_READ_LIMIT_S:
                self._fast_stalled(took)
            elif self._fast_pause > FAST_PAUSE_S[0]:
                self._fast_pause = FAST_PAUSE_S[0]

    def _fast_stalled(self, took: float) -> None:
        self.fast_stalls += 1
        self._fast_resume_at = time.monotonic() + self._fast_pause
        log.error(
            "store: a read on the event loop's thread took %.2f s (is another process "
            "holding %s's locks?); reads go through a thread for the next %.0f s",
            took,
            self.path,
            self._fast_pause,
        )
        self._fast_pause = min(self._fast_pause * 2, FAST_PAUSE_S[1])

    async def _point_read(self, action: str, sql: str, params: dict[str, Any]) -> Any:
        """Return the first row of a routing read (or None): synchronously when possible."""
        rows = self._fast_fetch((sql, params))
        if rows is not None:
            return rows[0]
        return await self._slow_read(action, sql, params)

    def lookup_number_now(
        self, account: str, number_key: str, *, learned_since: float | None = None
    ) -> NumberMatch | None:
        """See `Store.lookup_number_now`: the two reads on the loop-thread connection, which
        never waits for a lock; None when there is no such connection, SQLite is busy, or
        loop-thread reads are paused (see `_fast_fetch`)."""
        params = _lookup_params(account, number_key, learned_since)
        rows = self._fast_fetch((_LOOKUP_ROUTE, params), (_LOOKUP_CUSTOMER, params))
        if rows is None:
            return None
        route, customer = rows
        return NumberMatch(
            route=_route(route) if route is not None else None,
            customer=_customer(customer) if customer is not None else None,
        )

    async def lookup_number(
        self, account: str, number_key: str, *, learned_since: float | None = None
    ) -> NumberMatch:
        """See `Store.lookup_number`."""
        match = self.lookup_number_now(account, number_key, learned_since=learned_since)
        if match is not None:
            return match
        params = _lookup_params(account, number_key, learned_since)
        route = await self._slow_read("route lookup", _LOOKUP_ROUTE, params)
        customer = await self._slow_read("customer lookup", _LOOKUP_CUSTOMER, params)
        return NumberMatch(
            route=_route(route) if route is not None else None,
            customer=_customer(customer) if customer is not None else None,
        )

    async def lookup_code(self, account: str, code: str) -> Customer | None:
        """See `Store.lookup_code`."""
        row = await self._point_read(
            "code lookup", _LOOKUP_CODE, {"code": code, "account": account}
        )
        return _customer(row) if row is not None else None

    # -- routes ----------------------------------------------------------------------------

    async def set_route(
        self,
        account: str,
        phone_number: str,
        number_key: str,
        agent: str,
        *,
        description: str | None = None,
        origin: str = "manual",
        actor: str | None = None,
    ) -> Route:
        """See `Store.set_route`. With ``description`` None, a note that was set is kept; one
        that only defaulted to the agent follows the new agent."""
        now = _now()
        async with self._transaction("saving a route") as db:
            before = list(
                await db.execute_fetchall(
                    "SELECT agent FROM routes WHERE number_key = ? AND account = ?",
                    (number_key, account),
                )
            )
            await db.execute(
                """
                INSERT INTO routes (account, phone_number, number_key, agent, description,
                                    origin, created_at, updated_at, last_seen_at)
                VALUES (:account, :phone, :key, :agent, coalesce(:description, :agent),
                        :origin, :now, :now, CASE WHEN :origin = 'learned' THEN :now END)
                ON CONFLICT (number_key, account) DO UPDATE SET
                    phone_number = excluded.phone_number,
                    agent = excluded.agent,
                    description = CASE
                        WHEN :description IS NOT NULL THEN :description
                        WHEN routes.description = routes.agent THEN excluded.agent
                        ELSE routes.description END,
                    origin = excluded.origin,
                    updated_at = excluded.updated_at,
                    last_seen_at = coalesce(excluded.last_seen_at, routes.last_seen_at)
                """,
                {
                    "account": account,
                    "phone": phone_number,
                    "key": number_key,
                    "agent": agent,
                    "description": description,
                    "origin": origin,
                    "now": now,
                },
            )
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {_ROUTE_COLUMNS} FROM routes WHERE number_key = ? AND account = ?",  # noqa: S608
                    (number_key, account),
                )
            )
            if actor is not None:
                detail = f"agent={agent}" if not before else f"agent={before[0][0]}->{agent}"
                action = "route.update" if before else "route.create"
                await audit.record(db, AuditEntry(actor, action, account, number_key, detail), now)
        return _route(rows[0])

    async def learn_route(
        self,
        account: str,
        phone_number: str,
        number_key: str,
        agent: str,
        *,
        overwrite_manual: bool = False,
    ) -> LearnOutcome:
        """See `Store.learn_route`."""
        now = _now()
        select = f"SELECT {_ROUTE_COLUMNS} FROM routes WHERE number_key = ? AND account = ?"  # noqa: S608
        async with self._transaction("learning a route") as db:
            rows = list(await db.execute_fetchall(select, (number_key, account)))
            current = _route(rows[0]) if rows else None
            if current is None:
                outcome = "created"
                await db.execute(
                    "INSERT INTO routes (account, phone_number, number_key, agent, description, "
                    "origin, created_at, updated_at, last_seen_at) "
                    "VALUES (?, ?, ?, ?, ?, 'learned', ?, ?, ?)",
                    (account, phone_number, number_key, agent, agent, now, now, now),
                )
            elif current.agent == agent:
                outcome = "refreshed"
                await db.execute(
                    "UPDATE routes SET last_seen_at = ? WHERE id = ?", (now, current.id)
                )
            elif current.origin == "manual" and not overwrite_manual:
                return LearnOutcome("pinned", current)
            else:
                outcome = "updated"
                await db.execute(
                    """
                    UPDATE routes SET agent = :agent, origin = 'learned',
                        description = CASE WHEN description = agent THEN :agent
                                           ELSE description END,
                        updated_at = :now, last_seen_at = :now
                    WHERE id = :id
                    """,
                    {"agent": agent, "now": now, "id": current.id},
                )
            rows = list(await db.execute_fetchall(select, (number_key, account)))
        return LearnOutcome(outcome, _route(rows[0]))

    @staticmethod
    def _route_where(number_key: str | None, route_id: int | None) -> tuple[str, Any]:
        if (number_key is None) == (route_id is None):
            raise ValueError("give exactly one of number_key and route_id")
        if route_id is not None:
            return "id = ?", route_id
        return "number_key = ?", number_key

    async def get_route(
        self, account: str, *, number_key: str | None = None, route_id: int | None = None
    ) -> Route | None:
        """See `Store.get_route`."""
        where, value = self._route_where(number_key, route_id)
        rows = list(
            await self._read(
                "reading a route",
                f"SELECT {_ROUTE_COLUMNS} FROM routes WHERE {where} AND account = ?",  # noqa: S608
                (value, account),
            )
        )
        return _route(rows[0]) if rows else None

    async def delete_route(
        self,
        account: str,
        *,
        number_key: str | None = None,
        route_id: int | None = None,
        actor: str | None = None,
    ) -> bool:
        """See `Store.delete_route`."""
        where, value = self._route_where(number_key, route_id)
        async with self._transaction("deleting a route") as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT number_key, agent FROM routes WHERE {where} AND account = ?",  # noqa: S608
                    (value, account),
                )
            )
            if not rows:
                return False
            await db.execute(
                f"DELETE FROM routes WHERE {where} AND account = ?",  # noqa: S608
                (value, account),
            )
            if actor is not None:
                key, agent = rows[0]
                entry = AuditEntry(actor, "route.delete", account, key, f"agent={agent}")
                await audit.record(db, entry, _now())
            return True

    async def list_routes(self, account: str | None, limit: int, offset: int) -> Page[Route]:
        """See `Store.list_routes`."""
        where, params = ("WHERE account = ?", (account,)) if account is not None else ("", ())
        rows = await self._read(
            "listing routes",
            f"SELECT {_ROUTE_COLUMNS} FROM routes {where} ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
            (*params, limit, offset),
        )
        total = list(
            await self._read("counting routes", f"SELECT count(*) FROM routes {where}", params)  # noqa: S608
        )
        return Page(items=[_route(r) for r in rows], total=total[0][0])

    # -- customers -------------------------------------------------------------------------

    async def upsert_customer(self, customer: Customer, *, actor: str | None = None) -> Customer:
        """See `Store.upsert_customer`."""
        await self._write_customers([customer], actor, "customer.upsert", "")
        stored = await self.get_customer(customer.account, customer.customer_id)
        assert stored is not None
        return stored

    async def get_customer(self, account: str, customer_id: str) -> Customer | None:
        """See `Store.get_customer`."""
        rows = list(
            await self._read(
                "reading a customer",
                f"SELECT {_CUSTOMER_COLUMNS} FROM customers AS c "  # noqa: S608
                "WHERE c.account = ? AND c.customer_id = ?",
                (account, customer_id),
            )
        )
        return _customer(rows[0]) if rows else None

    async def delete_customer(
        self, account: str, customer_id: str, *, actor: str | None = None
    ) -> bool:
        """See `Store.delete_customer`."""
        async with self._transaction("deleting a customer") as db:
            cursor = await db.execute(
                "DELETE FROM customers WHERE account = ? AND customer_id = ?",
                (account, customer_id),
            )
            deleted = cursor.rowcount > 0
            if deleted and actor is not None:
                entry = AuditEntry(actor, "customer.delete", account, customer_id)
                await audit.record(db, entry, _now())
            return deleted

    async def list_customers(self, account: str | None, limit: int, offset: int) -> Page[Customer]:
        """See `Store.list_customers`."""
        where, params = ("WHERE c.account = ?", (account,)) if account is not None else ("", ())
        rows = await self._read(
            "listing customers",
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers AS c {where} "  # noqa: S608
            "ORDER BY c.account, c.customer_id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = list(
            await self._read(
                "counting customers",
                f"SELECT count(*) FROM customers AS c {where}",  # noqa: S608
                params,
            )
        )
        return Page(items=[_customer(r) for r in rows], total=total[0][0])

    async def import_customers(
        self, customers: Sequence[Customer], *, actor: str | None = None, note: str = ""
    ) -> int:
        """See `Store.import_customers`. Raises `ConflictError` with the index of the first
        customer whose number or code belongs to another customer of its account."""
        if not customers:
            return 0
        await self._write_customers(customers, actor, "customers.import", note)
        return len(customers)

    async def _write_customers(
        self, customers: Sequence[Customer], actor: str | None, action: str, note: str
    ) -> None:
        """Upsert ``customers`` in one transaction with their audit entries: one per customer
        for ``customer.upsert`` (created or replaced), one per account for an import."""
        try:
            async with self._transaction("saving customers") as db:
                existing: set[tuple[str, str]] = set()
                if actor is not None and action == "customer.upsert":
                    existing = await _existing(db, customers)
                await _write_customers(db, customers)
                if actor is not None:
                    for entry in _customer_audit(customers, actor, action, note, existing):
                        await audit.record(db, entry, _now())
        except StoreError as exc:
            if not isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise
            raise await self._find_conflict(customers) from exc

    async def _find_conflict(self, customers: Sequence[Customer]) -> ConflictError:
        """Replay a failed import one customer at a time, then roll it all back, to name the
        first customer that conflicts."""
        async with self._writing("diagnosing an import"):
            with _translated("diagnosing an import"):
                db = self._writer
                await db.execute("BEGIN IMMEDIATE")
                try:
                    for index, customer in enumerate(customers):
                        try:
                            await _write_customers(db, [customer])
                        except sqlite3.IntegrityError:
                            field, message = await _describe_conflict(db, customer)
                            return ConflictError(message, field=field, index=index)
                finally:
                    await self._rollback()
        return ConflictError("a phone number or code belongs to two customers")

    # -- personal data and the audit log -----------------------------------------------------

    async def erase_caller(
        self, number_keys: Sequence[str], account: str | None, *, actor: str
    ) -> Erasure:
        """See `Store.erase_caller`."""
        async with self._transaction("erasing a caller", secure_delete=True) as db:
            return await erasure.erase(db, number_keys, account, actor, _now())

    async def expire_learned(
        self, before: str, *, actor: str | None = None, limit: int | None = None
    ) -> int:
        """See `Store.expire_learned`."""
        expired = "origin = 'learned' AND coalesce(last_seen_at, updated_at) < ?"
        # No ORDER BY: a batch is whichever expired rows the index (routes_learned_seen)
        # gives first, so each batch reads only what it deletes.
        batch = f"SELECT id FROM routes WHERE {expired} LIMIT ?"  # noqa: S608
        bound = (before, -1 if limit is None else limit)  # SQLite: LIMIT -1 is no limit
        async with self._transaction("expiring learned routes") as db:
            counts = list(
                await db.execute_fetchall(
                    f"SELECT account, count(*) FROM routes WHERE id IN ({batch}) "  # noqa: S608
                    "GROUP BY account ORDER BY account",
                    bound,
                )
            )
            if not counts:
                return 0
            await db.execute(f"DELETE FROM routes WHERE id IN ({batch})", bound)  # noqa: S608
            if actor is not None:
                now = _now()
                for account, count in counts:
                    entry = AuditEntry(
                        actor, "route.expire", account, "", f"routes={count} before={before}"
                    )
                    await audit.record(db, entry, now)
        return sum(count for _, count in counts)

    async def prune_audit(self, before: str, *, limit: int | None = None) -> int:
        """See `Store.prune_audit`."""
        async with self._transaction("pruning the audit log") as db:
            cursor = await db.execute(
                "DELETE FROM audit_log WHERE id IN "
                "(SELECT id FROM audit_log WHERE at < ? ORDER BY id LIMIT ?)",
                (before, -1 if limit is None else limit),
            )
            return cursor.rowcount

    async def list_audit(self, query: AuditQuery) -> Page[AuditEntry]:
        """See `Store.list_audit`."""
        where, params = audit.where(query)
        rows = await self._read(
            "listing the audit log",
            f"SELECT {audit.COLUMNS} FROM audit_log WHERE {where} "  # noqa: S608
            "ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        )
        total = list(
            await self._read(
                "counting the audit log",
                f"SELECT count(*) FROM audit_log WHERE {where}",  # noqa: S608
                params,
            )
        )
        return Page(items=[audit.entry(r) for r in rows], total=total[0][0])

    def change_token_now(self) -> object | None:
        """See `Store.change_token_now`: the WAL-index header read from the ``-shm`` file
        (a 96-byte copy from a mapping, see `WalIndexWatch`); ``PRAGMA data_version`` on the
        loop-thread connection when the file is not in WAL mode or its ``-shm`` cannot be
        read; None when in doubt."""
        if self._wal_watch is not None:
            return self._wal_watch.token()
        return self.data_version_now()

    def data_version_now(self) -> int | None:
        """`data_version` read synchronously on the loop-thread connection; None when there
        is no such connection, SQLite is busy or loop-thread reads are paused (the caller
        must then not trust a cache)."""
        rows = self._fast_fetch(("PRAGMA data_version", ()))
        if rows is None:
            return None
        return int(rows[0][0])

    async def data_version(self) -> int:
        """See `Store.data_version` (SQLite's ``PRAGMA data_version`` on the read connection)."""
        rows = list(await self._read("reading data_version", "PRAGMA data_version"))
        return int(rows[0][0])

    async def ping(self) -> None:
        """See `Store.ping`: within `PING_TIMEOUT_MS` (a probe has a short timeout too)."""
        await self._read(
            "ping",
            "SELECT count(*) FROM sqlite_master",
            timeout_ms=min(PING_TIMEOUT_MS, self._busy_timeout_ms),
        )


def _fast_connection(path: str) -> sqlite3.Connection:
    """A read-only connection for the event loop's thread that never waits for a lock."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 0")
    conn.execute("PRAGMA query_only = 1")
    return conn


def _wal_watch(mode: str, databases: Iterable[Sequence[Any]]) -> WalIndexWatch | None:
    """A watch on the WAL-index of the main database (``databases``: the rows of ``PRAGMA
    database_list``), or None when its journal ``mode`` is not WAL: another journal mode has
    no WAL-index, and the hot layer then checks ``PRAGMA data_version``."""
    if mode.lower() != "wal":
        log.warning("store: journal mode is %s, not WAL; changes are checked by PRAGMA", mode)
        return None
    # The name SQLite opened (symbolic links resolved), whose "-shm" it uses.
    name = next((str(row[2]) for row in databases if row[1] == "main"), "")
    return WalIndexWatch.open(name) if name else None


async def _configure(conn: aiosqlite.Connection, busy_timeout_ms: int) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")


async def migrate_file(path: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
    """Apply the pending migrations to the existing store at ``path`` and nothing else (no
    journal mode, no connections kept): what `open` does first, for ``fastagi-router
    migrate``. Raises `StoreError` as `open` does."""
    with _translated(f"migrating {path}"):
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await _migrate(conn, path)
        finally:
            await conn.close()


async def _migrate(conn: aiosqlite.Connection, path: str) -> None:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    current = int(rows[0][0])
    if current > LATEST_VERSION:
        raise StoreError(
            f"{path} has schema version {current}, newer than this router knows "
            f"({LATEST_VERSION}); upgrade fastagi-router"
        )
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {migration.version}")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def _write_customers(db: aiosqlite.Connection, customers: Sequence[Customer]) -> None:
    now = _now()
    await db.executemany(
        """
        INSERT INTO customers (account, customer_id, name, code, destination1, destination2,
                               destination3, destination4, vip, oncall, created_at, updated_at)
        VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (account, customer_id) DO UPDATE SET
            name = excluded.name, code = NULL,
            destination1 = excluded.destination1, destination2 = excluded.destination2,
            destination3 = excluded.destination3, destination4 = excluded.destination4,
            vip = excluded.vip, oncall = excluded.oncall, updated_at = excluded.updated_at
        """,
        [
            (c.account, c.customer_id, c.name, *c.destinations, int(c.vip), int(c.oncall), now, now)
            for c in customers
        ],
    )
    # Codes and numbers are released first and claimed after, so that customers of one
    # batch may swap them.
    await db.executemany(
        "DELETE FROM customer_numbers WHERE account = ? AND customer_id = ?",
        [(c.account, c.customer_id) for c in customers],
    )
    await db.executemany(
        "UPDATE customers SET code = ? WHERE account = ? AND customer_id = ?",
        [(c.code, c.account, c.customer_id) for c in customers if c.code is not None],
    )
    await db.executemany(
        "INSERT INTO customer_numbers (number_key, account, customer_id) VALUES (?, ?, ?)",
        [(key, c.account, c.customer_id) for c in customers for key in c.phone_numbers],
    )


async def _existing(
    db: aiosqlite.Connection, customers: Sequence[Customer]
) -> set[tuple[str, str]]:
    """The (account, customer_id) of ``customers`` already stored."""
    found: set[tuple[str, str]] = set()
    for c in customers:
        rows = list(
            await db.execute_fetchall(
                "SELECT 1 FROM customers WHERE account = ? AND customer_id = ?",
                (c.account, c.customer_id),
            )
        )
        if rows:
            found.add((c.account, c.customer_id))
    return found


def _customer_audit(
    customers: Sequence[Customer],
    actor: str,
    action: str,
    note: str,
    existing: set[tuple[str, str]],
) -> list[AuditEntry]:
    """The audit entries of a customer write (no phone number, no code: counts only)."""
    if action == "customer.upsert":
        return [
            AuditEntry(
                actor,
                action,
                c.account,
                c.customer_id,
                f"{'replaced' if (c.account, c.customer_id) in existing else 'created'} "
                f"numbers={len(c.phone_numbers)} code={'yes' if c.code else 'no'}",
            )
            for c in customers
        ]
    counts: dict[str, int] = {}
    for c in customers:
        counts[c.account] = counts.get(c.account, 0) + 1
    suffix = f" {note}" if note else ""
    return [
        AuditEntry(actor, action, account, "", f"customers={count}{suffix}")
        for account, count in sorted(counts.items())
    ]


async def _describe_conflict(db: aiosqlite.Connection, customer: Customer) -> tuple[str, str]:
    for key in customer.phone_numbers:
        rows = list(
            await db.execute_fetchall(
                "SELECT customer_id FROM customer_numbers WHERE number_key = ? AND account = ? "
                "AND customer_id != ?",
                (key, customer.account, customer.customer_id),
            )
        )
        if rows:
            return "phone_numbers", f"{key} already belongs to customer {rows[0][0]}"
    if customer.code is not None:
        rows = list(
            await db.execute_fetchall(
                "SELECT customer_id FROM customers WHERE code = ? AND account = ? "
                "AND customer_id != ?",
                (customer.code, customer.account, customer.customer_id),
            )
        )
        if rows:
            return "code", f"code {customer.code} already belongs to customer {rows[0][0]}"
    return "customer", "a phone number or code belongs to two customers"
