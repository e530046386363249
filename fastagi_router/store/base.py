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

from fastagi_router.model import Customer, NumberMatch, Route

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


class Store(Protocol):
    """Routes (the sticky-agent table) and customers, scoped by account."""

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
        self, account: str, *, number_key: str | None = None, route_id: int | None = None
    ) -> bool:
        """Delete the route of ``account`` with that number key or id; True if one existed."""
        ...

    async def list_routes(self, account: str | None, limit: int, offset: int) -> Page[Route]:
        """Return routes (of ``account``, or of all accounts when None) ordered by id."""
        ...

    async def upsert_customer(self, customer: Customer) -> Customer:
        """Insert or replace a customer (its numbers and code included); return it."""
        ...

    async def get_customer(self, account: str, customer_id: str) -> Customer | None:
        """Return one customer of ``account`` (no fallback), or None."""
        ...

    async def delete_customer(self, account: str, customer_id: str) -> bool:
        """Delete one customer; True if it existed."""
        ...

    async def list_customers(self, account: str | None, limit: int, offset: int) -> Page[Customer]:
        """Return customers (of ``account``, or of all accounts) ordered by account and id."""
        ...

    async def import_customers(self, customers: Sequence[Customer]) -> int:
        """Upsert every customer in one transaction: all of them, or none. Returns the count.

        Raises `StoreError` (and writes nothing) when a number or code would belong to two
        customers of one account.
        """
        ...

    def change_token_now(self) -> object | None:
        """Return, without waiting, a value that differs from the one returned before
        whenever anything may have been committed since by any process (false positives are
        allowed, false negatives never), or None when the store cannot tell now. A cache in
        front of the store compares it before every answer. SQLite in WAL mode reads the
        WAL-index header (one ``pread``); a store that has no cheap signal returns None."""
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
