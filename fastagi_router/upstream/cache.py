"""`UpstreamCache`: the API's answers kept in the router's SQLite file (table ``upstream_cache``).

Theory of operation. An answer is kept per (account, ``number`` or ``code``, value), with the
Unix time it was fetched, so ages survive restarts. `CachePolicy.classify` says what an
entry is good for at a given time::

    found, age < fresh_ttl             FRESH     used as is
    found, age < stale_ttl             REFRESH   used at once; one background request renews it
    found, age <= max_stale            STALE     used only when the API fails or is too slow
    not found, age < negative_ttl      FRESH     "not found" is believed for a shorter time
    anything older                     EXPIRED   not used

Reads are on the call path: one indexed SELECT on a connection of the cache's own. Writes
never are: `put` files the entry in memory and returns; a background task writes what has
accumulated in one transaction, on a second connection, at most one transaction every
`WRITE_INTERVAL` seconds, and meanwhile `get` answers from memory, so a call never waits on
a write and never misses an answer that is still on its way to disk. Every
``sweep_interval`` the writer also deletes entries that can no longer be used, and when the
table holds more than ``max_entries`` it deletes the least recently fetched down to 90 % of
that (an entry in use is refetched every ``fresh_ttl`` or so, so it stays young). The
``cache`` command reads and purges the same table while ``serve`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from fastagi_router.config import UpstreamSettings
from fastagi_router.errors import StoreError, ValidationError
from fastagi_router.metrics import Metrics
from fastagi_router.model import AuditEntry, Customer
from fastagi_router.store import audit
from fastagi_router.store.base import Page

log = logging.getLogger("fastagi_router.upstream")

KINDS = ("number", "code")
#: The schema version (fastagi_router.store.schema) the cache needs: 2 created its table, 3
#: the audit log that a purge writes to.
SCHEMA_VERSION = 3
#: Answers waiting for the writer; past this, new ones are dropped (and counted).
MAX_PENDING = 10000
#: Shortest time between two of the writer's transactions, unless a flush is asked for.
#: Every commit changes the store file's WAL-index header, which empties the hot layer in
#: front of the local tables (store/hot.py) in every process: one write per answer would
#: empty it as often as new callers' answers arrive. Answers arriving meanwhile are served
#: from memory and written together.
WRITE_INTERVAL = 0.5
_COLUMNS = (
    "account, kind, lookup_key, found, customer_id, destination1, destination2, "
    "destination3, destination4, vip, oncall, fetched_at"
)
_UPSERT = f"""
INSERT INTO upstream_cache ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account, kind, lookup_key) DO UPDATE SET
    found = excluded.found, customer_id = excluded.customer_id,
    destination1 = excluded.destination1, destination2 = excluded.destination2,
    destination3 = excluded.destination3, destination4 = excluded.destination4,
    vip = excluded.vip, oncall = excluded.oncall, fetched_at = excluded.fetched_at
WHERE excluded.fetched_at >= upstream_cache.fetched_at
"""  # noqa: S608 (constants only)


class Freshness(enum.StrEnum):
    """What a cached entry is good for now (see the module docstring)."""

    FRESH = "fresh"
    REFRESH = "refresh"
    STALE = "stale"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """One question to the API: ``kind`` is ``number`` (an E.164 key) or ``code``."""

    account: str
    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"cache key kind is number or code, not {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.account}/{self.kind}/{self.value}"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """The API's answer to ``key``: a customer, or None for "not found"."""

    key: CacheKey
    customer: Customer | None
    fetched_at: float

    def age(self, now: float) -> float:
        """Seconds since the answer was fetched (0 if the clock went back)."""
        return max(now - self.fetched_at, 0.0)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long answers are good for, in seconds (see the module docstring)."""

    fresh_ttl: float = 300.0
    stale_ttl: float = 3600.0
    negative_ttl: float = 60.0
    max_stale: float = 86400.0

    def __post_init__(self) -> None:
        if not 0 <= self.fresh_ttl <= self.stale_ttl <= self.max_stale or self.negative_ttl < 0:
            raise ValueError("0 <= fresh_ttl <= stale_ttl <= max_stale and negative_ttl >= 0")

    @classmethod
    def from_settings(cls, settings: UpstreamSettings) -> CachePolicy:
        """Return the policy of the ``upstream.*_ttl_s`` and ``max_stale_s`` settings."""
        return cls(
            fresh_ttl=settings.fresh_ttl_s,
            stale_ttl=settings.stale_ttl_s,
            negative_ttl=settings.negative_ttl_s,
            max_stale=settings.max_stale_s,
        )

    def classify(self, entry: CacheEntry, now: float) -> Freshness:
        """Return what ``entry`` is good for at ``now``."""
        age = entry.age(now)
        if entry.customer is None:
            return Freshness.FRESH if age < self.negative_ttl else Freshness.EXPIRED
        if age < self.fresh_ttl:
            return Freshness.FRESH
        if age < self.stale_ttl:
            return Freshness.REFRESH
        if age <= self.max_stale:
            return Freshness.STALE
        return Freshness.EXPIRED


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite's "no connection"
        raise StoreError(f"upstream cache: {action} failed: {exc}") from exc


def _row(entry: CacheEntry) -> tuple[Any, ...]:
    c = entry.customer
    key = entry.key
    if c is None:
        return (key.account, key.kind, key.value, 0, "", "", "", "", "", 0, 0, entry.fetched_at)
    return (
        key.account,
        key.kind,
        key.value,
        1,
        c.customer_id,
        *c.destinations,
        int(c.vip),
        int(c.oncall),
        entry.fetched_at,
    )


def _entry(row: Sequence[Any]) -> CacheEntry:
    key = CacheKey(row[0], row[1], row[2])
    customer = None
    if row[3]:
        customer = Customer(
            account=key.account,
            customer_id=row[4],
            destinations=(row[5], row[6], row[7], row[8]),
            vip=bool(row[9]),
            oncall=bool(row[10]),
            phone_numbers=(key.value,) if key.kind == "number" else (),
            code=key.value if key.kind == "code" else None,
        )
    return CacheEntry(key, customer, float(row[11]))


class UpstreamCache:
    """The cache table, with reads on the caller's time and writes in the background.

    Create it with `UpstreamCache.open` inside the event loop; `close` writes what is still
    pending and releases the connections.
    """

    def __init__(
        self,
        path: str,
        reader: aiosqlite.Connection,
        writer: aiosqlite.Connection,
        *,
        policy: CachePolicy,
        max_entries: int,
        clock: Callable[[], float],
        metrics: Metrics,
        rows: int,
        sweep_interval: float,
    ) -> None:
        self.path = path
        self.policy = policy
        self.max_entries = max_entries
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._metrics = metrics
        self._pending: dict[CacheKey, CacheEntry] = {}
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        #: Set by `flush`: write now, without waiting out `WRITE_INTERVAL`.
        self._urgent = asyncio.Event()
        #: An upper bound of the rows in the table (exact after each eviction check).
        self._rows = rows
        self._sweep_interval = sweep_interval
        self._last_sweep = clock()
        self._task = asyncio.get_running_loop().create_task(self._write_loop())
        metrics.describe("upstream_cache_writes_total", "counter", "Upstream answers saved")
        metrics.describe("upstream_cache_evictions_total", "counter", "Cache entries deleted")

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        policy: CachePolicy,
        max_entries: int = 100000,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        busy_timeout_ms: int = 5000,
        sweep_interval: float = 60.0,
    ) -> UpstreamCache:
        """Open the cache in the store file at ``path``, migrating the file if needed.

        Raises `StoreError` when the file cannot be opened or migrated.
        """
        await _ensure_schema(path)
        reader = writer = None
        with _translated(f"opening {path}"):
            try:
                reader = await _connect(path, busy_timeout_ms)
                writer = await _connect(path, busy_timeout_ms)
                rows = list(await reader.execute_fetchall("SELECT count(*) FROM upstream_cache"))
            except BaseException:
                for conn in (reader, writer):
                    if conn is not None:
                        await conn.close()
                raise
        return cls(
            path,
            reader,
            writer,
            policy=policy,
            max_entries=max_entries,
            clock=clock,
            metrics=metrics or Metrics(),
            rows=int(rows[0][0]),
            sweep_interval=sweep_interval,
        )

    # -- the call path ---------------------------------------------------------------------

    async def get(self, key: CacheKey) -> CacheEntry | None:
        """Return the entry for ``key`` (still unwritten ones included), or None.

        Raises `StoreError` when the file cannot be read; an entry that no longer validates
        (edited by hand) reads as None.
        """
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        with _translated("reading an entry"):
            rows = list(
                await self._reader.execute_fetchall(
                    f"SELECT {_COLUMNS} FROM upstream_cache "  # noqa: S608
                    "WHERE account = ? AND kind = ? AND lookup_key = ?",
                    (key.account, key.kind, key.value),
                )
            )
        if not rows:
            return None
        try:
            return _entry(rows[0])
        except (ValidationError, ValueError) as exc:
            log.warning("upstream cache: ignoring the unreadable entry %s: %s", key, exc)
            return None

    def put(self, entry: CacheEntry) -> None:
        """File ``entry`` to be written in the background; return at once."""
        if entry.key not in self._pending and len(self._pending) >= MAX_PENDING:
            self._metrics.inc("upstream_cache_writes_total", outcome="dropped")
            return
        self._pending[entry.key] = entry
        self._drained.clear()
        self._wake.set()

    # -- the writer ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every entry `put` so far is written (or given up on)."""
        if self._task.done():
            return
        self._urgent.set()
        await self._drained.wait()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = list(self._pending.values())  # empty when a purge took them
            if batch:
                try:
                    await self._write(batch)
                    self._metrics.inc("upstream_cache_writes_total", len(batch), outcome="written")
                except StoreError as exc:
                    # The cache is an optimisation: losing a write costs one more request.
                    log.warning("upstream cache: %d answer(s) not saved: %s", len(batch), exc)
                    self._metrics.inc("upstream_cache_writes_total", len(batch), outcome="failed")
                finally:
                    for entry in batch:
                        if self._pending.get(entry.key) is entry:
                            del self._pending[entry.key]
            if not self._pending:
                self._drained.set()
            if not batch:
                continue
            # At most one transaction per WRITE_INTERVAL; a flush cuts the wait short.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WRITE_INTERVAL):
                    await self._urgent.wait()
            self._urgent.clear()
            if self._pending:
                self._wake.set()

    async def _write(self, batch: Sequence[CacheEntry]) -> None:
        now = self._clock()
        with _translated("saving answers"):
            db = self._writer
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.executemany(_UPSERT, [_row(e) for e in batch])
                self._rows += len(batch)
                evicted = 0
                if now - self._last_sweep >= self._sweep_interval:
                    self._last_sweep = now
                    evicted += await self._sweep(db, now)
                if self._rows > self.max_entries:
                    evicted += await self._evict(db)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        if evicted:
            self._metrics.inc("upstream_cache_evictions_total", evicted)

    async def _sweep(self, db: aiosqlite.Connection, now: float) -> int:
        """Delete entries no policy can use any more; return how many."""
        cursor = await db.execute(
            "DELETE FROM upstream_cache WHERE fetched_at < ? OR (found = 0 AND fetched_at < ?)",
            (now - self.policy.max_stale, now - self.policy.negative_ttl),
        )
        self._rows = max(self._rows - cursor.rowcount, 0)
        return cursor.rowcount

    async def _evict(self, db: aiosqlite.Connection) -> int:
        """Bring the table down to 90 % of ``max_entries``, least recently fetched first."""
        rows = list(await db.execute_fetchall("SELECT count(*) FROM upstream_cache"))
        self._rows = int(rows[0][0])
        if self._rows <= self.max_entries:
            return 0
        excess = self._rows - self.max_entries * 9 // 10
        cursor = await db.execute(
            "DELETE FROM upstream_cache WHERE (account, kind, lookup_key) IN ("
            " SELECT account, kind, lookup_key FROM upstream_cache"
            " ORDER BY fetched_at LIMIT ?)",
            (excess,),
        )
        self._rows -= cursor.rowcount
        log.info("upstream cache: evicted %d least recently fetched entries", cursor.rowcount)
        return cursor.rowcount

    # -- inspection (the cache command) ----------------------------------------------------

    async def entries(self, account: str | None, limit: int, offset: int) -> Page[CacheEntry]:
        """Return entries (of ``account``, or of all) ordered by account, kind and value."""
        where, params = ("WHERE account = ?", (account,)) if account is not None else ("", ())
        with _translated("listing entries"):
            rows = await self._reader.execute_fetchall(
                f"SELECT {_COLUMNS} FROM upstream_cache {where} "  # noqa: S608
                "ORDER BY account, kind, lookup_key LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
            total = list(
                await self._reader.execute_fetchall(
                    f"SELECT count(*) FROM upstream_cache {where}",  # noqa: S608
                    params,
                )
            )
        return Page(items=list(self._readable(rows)), total=int(total[0][0]))

    async def find(self, kind: str, value: str, account: str | None = None) -> list[CacheEntry]:
        """Return the entries for one number key or code, in ``account`` or in every account."""
        where, params = _where(kind, value, account)
        with _translated("reading entries"):
            rows = await self._reader.execute_fetchall(
                f"SELECT {_COLUMNS} FROM upstream_cache WHERE {where} ORDER BY account",  # noqa: S608
                params,
            )
        return list(self._readable(rows))

    async def delete(
        self, kind: str, value: str, account: str | None = None, *, actor: str | None = None
    ) -> int:
        """Delete the entries for one number key or code; return how many there were.

        With ``actor``, a deletion is audited: the number key as the target (a code is
        not recorded, only that one was purged)."""
        where, params = _where(kind, value, account)
        for key in [k for k in self._pending if k.kind == kind and k.value == value]:
            if account is None or key.account == account:
                del self._pending[key]
        target = value if kind == "number" else ""
        note = AuditEntry(actor, "cache.purge", account, target, f"kind={kind}") if actor else None
        return await self._delete(where, params, note)

    async def purge(self, account: str | None = None, *, actor: str | None = None) -> int:
        """Delete every entry (of ``account``, or of all accounts); return how many.

        With ``actor``, a purge that deleted something is audited."""
        note = AuditEntry(actor, "cache.purge", account, "", "all") if actor else None
        if account is None:
            self._pending.clear()
            return await self._delete("1 = 1", (), note)
        for key in [k for k in self._pending if k.account == account]:
            del self._pending[key]
        return await self._delete("account = ?", (account,), note)

    async def _delete(
        self, where: str, params: Sequence[Any], note: AuditEntry | None = None
    ) -> int:
        """Delete the entries ``where`` says; with ``note``, audit the deletion (if any) in
        the same transaction, the count added to its detail."""
        with _translated("deleting entries"):
            db = self._writer
            await db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await db.execute(
                    f"DELETE FROM upstream_cache WHERE {where}",  # noqa: S608
                    params,
                )
                if note is not None and cursor.rowcount > 0:
                    detail = f"{note.detail} entries={cursor.rowcount}"
                    entry = dataclasses.replace(note, detail=detail)
                    await audit.record(db, entry, audit.timestamp(time.time()))
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        self._rows = max(self._rows - cursor.rowcount, 0)
        return cursor.rowcount

    @staticmethod
    def _readable(rows: Iterable[Sequence[Any]]) -> Iterator[CacheEntry]:
        for row in rows:
            try:
                yield _entry(row)
            except (ValidationError, ValueError) as exc:
                log.warning("upstream cache: skipping an unreadable entry %s: %s", row[:3], exc)

    async def close(self) -> None:
        """Write what is pending, stop the writer and close both connections."""
        if not self._task.done():
            with contextlib.suppress(StoreError):
                await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in (self._reader, self._writer):
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.close()


def _where(kind: str, value: str, account: str | None) -> tuple[str, tuple[str, ...]]:
    if kind not in KINDS:
        raise ValueError(f"kind is number or code, not {kind!r}")
    if account is None:
        return "kind = ? AND lookup_key = ?", (kind, value)
    return "kind = ? AND lookup_key = ? AND account = ?", (kind, value, account)


async def _connect(path: str, busy_timeout_ms: int) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _ensure_schema(path: str) -> None:
    """Migrate the store file when it predates the cache table (the store owns the schema)."""
    from fastagi_router.store import SQLiteStore  # noqa: PLC0415 (only for old files)

    with _translated(f"checking the schema of {path}"):
        async with aiosqlite.connect(path) as conn:
            rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    if int(rows[0][0]) < SCHEMA_VERSION:
        store = await SQLiteStore.open(path)
        await store.close()
