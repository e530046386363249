"""The store interface the rest of the router depends on.

Routing needs two reads (`lookup_number`, `lookup_code`); the CLI and the REST API need
the writes and listings. The SQLite implementation is the embedded default; a shared
PostgreSQL store for several routers, or an in-memory layer in front of SQLite for the hot
path, implement the same `Store` protocol. Every method raises `StoreError` when the store
cannot answer, never a driver's own exception.

Account scoping: entries of the account ``default`` apply to every account that has no entry
of its own for the same number or code (single-tenant deployments put everything there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from fastagi_router.model import AuditEntry, Customer, NumberMatch, Route

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: ``items`` and the ``total`` number of matching entries."""

    items: Sequence[T]
    total: int


@dataclass(frozen=True, slots=True)
class LearnOutcome:
    """What `Store.learn_route` did: ``outcome`` is ``created`` (a new learned entry),
    ``updated`` (the entry now names the new agent), ``refreshed`` (same agent, last seen now)
    or ``pinned`` (a manual entry for another agent was kept as it was); ``route`` as stored."""

    outcome: str
    route: Route


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit entries to list, newest first. Times are UTC in the store's format
    (``YYYY-MM-DD HH:MM:SS``): ``since`` included, ``until`` excluded. ``accounts`` None:
    every entry (those of no account included); a set: only entries of those accounts."""

    since: str | None = None
    until: str | None = None
    actor: str | None = None
    action: str | None = None
    accounts: frozenset[str] | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Erasure:
    """What `Store.erase_caller` removed for ``number_key`` in ``account`` (None: every
    account): routes deleted, the number taken off customer records, customer records
    deleted because it was their only number, upstream cache answers deleted, and audit
    entries whose target was redacted."""

    number_key: str
    account: str | None
    routes: int = 0
    customer_numbers: int = 0
    customers: int = 0
    cache_entries: int = 0
    audit_entries: int = 0

    def counts(self) -> dict[str, int]:
        """The counts by name."""
        return {
            "routes": self.routes,
            "customer_numbers": self.customer_numbers,
            "customers": self.customers,
            "cache_entries": self.cache_entries,
            "audit_entries": self.audit_entries,
        }

    @property
    def total(self) -> int:
        """Everything removed or redacted."""
        return sum(self.counts().values())


class Store(Protocol):
    """Routes (the sticky-agent table) and customers, scoped by account, and the audit log.

    A write given an ``actor`` (``api:<token>``, ``cli:<user>``, ``system:<task>``) records
    what it changed in the audit log in the same transaction: both are kept, or neither.
    Writes without an actor (learning from the Manager) are not audited.
    """

    async def lookup_number(
        self, account: str, number_key: str, *, learned_since: float | None = None
    ) -> NumberMatch:
        """Return the route and the customer for ``number_key`` in ``account`` (each falling
        back to the ``default`` account), in one read.

        With ``learned_since`` (POSIX time), a learned route last seen before it is ignored,
        as if absent; manual routes are never ignored.
        """
        ...

    def lookup_number_now(
        self, account: str, number_key: str, *, learned_since: float | None = None
    ) -> NumberMatch | None:
        """`lookup_number` answered synchronously, without waiting on anything, when the
        store can (an in-memory hit, or a read that takes microseconds); None when it
        cannot, and the caller then awaits `lookup_number`. A store on a network (e.g.
        PostgreSQL) may always return None."""
        ...

    async def lookup_code(self, account: str, code: str) -> Customer | None:
        """Return the customer whose identification code is ``code`` in ``account`` (falling
        back to ``default``), or None."""
        ...

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
        """Insert or update the route of ``number_key`` in ``account``; return it as stored."""
        ...

    async def learn_route(
        self,
        account: str,
        phone_number: str,
        number_key: str,
        agent: str,
        *,
        overwrite_manual: bool = False,
    ) -> LearnOutcome:
        """Record that ``agent`` just served ``number_key`` in ``account``, in one transaction.

        A learned entry follows the latest agent; a manual entry is kept unless
        ``overwrite_manual`` (its last-seen time is refreshed when the agent is the same).
        """
        ...

    async def get_route(
        self, account: str, *, number_key: str | None = None, route_id: int | None = None
    ) -> Route | None:
        """Return the route of ``account`` with that number key or id (no fallback), or None."""
        ...

    async def delete_route(
        self,
        account: str,
        *,
        number_key: str | None = None,
        route_id: int | None = None,
        actor: str | None = None,
    ) -> bool:
        """Delete the route of ``account`` with that number key or id; True if one existed."""
        ...

    async def list_routes(self, account: str | None, limit: int, offset: int) -> Page[Route]:
        """Return routes (of ``account``, or of all accounts when None) ordered by id."""
        ...

    async def upsert_customer(self, customer: Customer, *, actor: str | None = None) -> Customer:
        """Insert or replace a customer (its numbers and code included); return it."""
        ...

    async def get_customer(self, account: str, customer_id: str) -> Customer | None:
        """Return one customer of ``account`` (no fallback), or None."""
        ...

    async def delete_customer(
        self, account: str, customer_id: str, *, actor: str | None = None
    ) -> bool:
        """Delete one customer; True if it existed."""
        ...

    async def list_customers(self, account: str | None, limit: int, offset: int) -> Page[Customer]:
        """Return customers (of ``account``, or of all accounts) ordered by account and id."""
        ...

    async def import_customers(
        self, customers: Sequence[Customer], *, actor: str | None = None, note: str = ""
    ) -> int:
        """Upsert every customer in one transaction: all of them, or none. Returns the count.

        Audited as one entry per account, with the count and ``note`` (e.g. rows rejected).

        Raises `StoreError` (and writes nothing) when a number or code would belong to two
        customers of one account.
        """
        ...

    async def erase_caller(
        self, number_keys: Sequence[str], account: str | None, *, actor: str
    ) -> Erasure:
        """Remove a caller's number from everything the store keeps, in one transaction:
        routes whose number is one of ``number_keys`` (every spelling of one number, the
        normalised key first), the number from customer records (a record left without
        any number is deleted: it was that caller's), upstream cache answers for it, and
        the number where it is the target of an audit entry (redacted). In ``account``, or
        in every account when None. The erasure is audited without the number."""
        ...

    async def expire_learned(
        self, before: str, *, actor: str | None = None, limit: int | None = None
    ) -> int:
        """Delete learned routes last seen before ``before`` (UTC, store format), at most
        ``limit`` of them (None: all); manual routes are kept. Audited as one entry per
        account that lost some. Returns the count."""
        ...

    async def prune_audit(self, before: str, *, limit: int | None = None) -> int:
        """Delete audit entries older than ``before`` (UTC, store format), at most ``limit``
        (None: all), oldest first; return how many."""
        ...

    async def list_audit(self, query: AuditQuery) -> Page[AuditEntry]:
        """Return the audit entries matching ``query``, newest first."""
        ...

    def change_token_now(self) -> object | None:
        """Return, without waiting, a value that differs from the one returned before
        whenever anything may have been committed since by any process (false positives are
        allowed, false negatives never), or None when the store cannot tell now. A cache in
        front of the store compares it before every answer. SQLite in WAL mode reads the
        WAL-index header (from a mapping of the ``-shm``); a store that has no cheap signal
        returns None."""
        ...

    async def data_version(self) -> int:
        """Return a number that changes whenever any process commits a change to the store."""
        ...

    async def ping(self) -> None:
        """Raise `StoreError` unless the store answers a trivial read."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...
