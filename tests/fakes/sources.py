"""Customer sources and stores with injectable behaviour, for the routing tests."""

from __future__ import annotations

import asyncio
from typing import Any

from fastagi_router.errors import SourceError, StoreError
from fastagi_router.model import Customer
from fastagi_router.phone import CallerNumber
from fastagi_router.routing import Found


class HangingSource:
    """Never answers: the router's deadline must end the call."""

    def __init__(self) -> None:
        self.calls = 0

    async def by_number(self, account: str, number: CallerNumber, **_: Any) -> Found | None:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def by_code(self, account: str, code: str, **_: Any) -> Found | None:
        return await self.by_number(account, CallerNumber(code, None, code))


class FailingSource:
    """Raises ``error`` on every lookup."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def by_number(self, account: str, number: CallerNumber, **_: Any) -> Found | None:
        raise self.error

    async def by_code(self, account: str, code: str, **_: Any) -> Found | None:
        raise self.error


class DictSource:
    """Answers from dicts, as an upstream API would, with ``source`` as its label."""

    def __init__(
        self, by_number: dict[str, Customer], by_code: dict[str, Customer], source: str = "api"
    ) -> None:
        self.numbers = by_number
        self.codes = by_code
        self.source = source
        self.asked: list[str] = []

    async def by_number(self, account: str, number: CallerNumber, **_: Any) -> Found | None:
        self.asked.append(number.key)
        customer = self.numbers.get(number.key)
        return Found(customer, self.source) if customer else None

    async def by_code(self, account: str, code: str, **_: Any) -> Found | None:
        self.asked.append(code)
        customer = self.codes.get(code)
        return Found(customer, self.source) if customer else None


class BrokenStore:
    """Wraps a store; every routing read raises `StoreError`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def lookup_number_now(self, account: str, number_key: str, **_: Any) -> Any:
        return None  # cannot answer without waiting: the call takes the awaited path

    async def lookup_number(self, account: str, number_key: str, **_: Any) -> Any:
        raise StoreError("store: database is locked")

    async def lookup_code(self, account: str, code: str) -> Any:
        raise StoreError("store: database is locked")


def source_error(reason: str = "source_error") -> SourceError:
    return SourceError("the upstream API is down", reason=reason)
