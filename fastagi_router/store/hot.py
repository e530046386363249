"""`HotStore`: a bounded in-memory layer for hot numbers in front of the SQLite store.

A caller who calls often is answered from memory. The layer never serves a stale answer:
before each lookup it asks the store for its change token (`Store.change_token_now`: for
SQLite in WAL mode the WAL-index header, 96 bytes copied from a mapping), which
changes whenever any connection -- the REST API, the CLI in another process, another
worker -- commits a change; on a change, or when the store cannot tell, the whole layer is
dropped.
Entries also expire after ``max_age`` seconds, so answers that depend on the clock (an
affinity window) are never older than that. Everything but the two routing reads goes
straight to the store underneath.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastagi_router.model import Customer, NumberMatch
from fastagi_router.store.sqlite import SQLiteStore

_MISSING = object()
T = TypeVar("T")


class HotStore:
    """A `Store` that answers routing reads of recent numbers from memory."""

    def __init__(
        self,
        inner: SQLiteStore,
        *,
        size: int = 20000,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.size = size
        self.max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Any]] = OrderedDict()
        self._token: object | None = None
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> Any:
        # Writes, listings and the rest of the Store protocol go to SQLite as they are.
        return getattr(self.inner, name)

    def _valid(self) -> bool:
        """Drop everything if the store may have changed since the last look; False (and
        nothing kept) when the store cannot tell now."""
        token = self.inner.change_token_now()
        if token is None:
            self._entries.clear()
            self._token = None
            return False
        if token != self._token:
            self._entries.clear()
            self._token = token
        return True

    def _get(self, key: tuple[str, str, str]) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return _MISSING
        stored_at, value = entry
        if self._clock() - stored_at > self.max_age:
            del self._entries[key]
            return _MISSING
        self._entries.move_to_end(key)
        return value

    def _put(self, key: tuple[str, str, str], value: Any) -> None:
        self._entries[key] = (self._clock(), value)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def lookup_number_now(
        self, account: str, number_key: str, *, learned_since: float | None = None
    ) -> NumberMatch | None:
        """See `Store.lookup_number_now`: from memory, else from SQLite's loop-thread read.

        An entry is reused whatever ``learned_since`` a later call passes: a learned route
        that leaves its affinity window may still route for up to ``max_age`` seconds.
        """
        if not self._valid():
            return None
        key = ("n", account, number_key)
        hit = self._get(key)
        if hit is not _MISSING:
            self.hits += 1
            return cast(NumberMatch, hit)
        match = self.inner.lookup_number_now(account, number_key, learned_since=learned_since)
        return self._miss(key, match) if match is not None else None

    async def lookup_number(
        self, account: str, number_key: str, *, learned_since: float | None = None
    ) -> NumberMatch:
        """See `Store.lookup_number` (and `lookup_number_now` for ``learned_since``)."""
        if not self._valid():
            return await self.inner.lookup_number(account, number_key, learned_since=learned_since)
        key = ("n", account, number_key)
        hit = self._get(key)
        if hit is not _MISSING:
            self.hits += 1
            return cast(NumberMatch, hit)
        return self._miss(
            key, await self.inner.lookup_number(account, number_key, learned_since=learned_since)
        )

    async def lookup_code(self, account: str, code: str) -> Customer | None:
        """See `Store.lookup_code`."""
        if not self._valid():
            return await self.inner.lookup_code(account, code)
        key = ("c", account, code)
        hit = self._get(key)
        if hit is not _MISSING:
            self.hits += 1
            return cast(Customer | None, hit)
        return self._miss(key, await self.inner.lookup_code(account, code))

    def _miss(self, key: tuple[str, str, str], value: T) -> T:
        self.misses += 1
        self._put(key, value)
        return value

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
