"""Where customers are looked up beyond the local store.

The local store is always consulted first, in one read that also returns the sticky agent.
A `CustomerSource` is consulted after it, in order, when the local store does not know the
caller: the upstream customer API (through its cache) is one. A source answers `Found`
(with the SMARTROUTING_SOURCE word that says where the answer came from), None when it does
not know the caller, or raises `SourceError` whose ``reason`` ends the call as FALLBACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fastagi_router.model import Customer
from fastagi_router.phone import CallerNumber


@dataclass(frozen=True, slots=True)
class Found:
    """A customer, and where it came from: ``local``, ``cache``, ``api`` or ``stale``."""

    customer: Customer
    source: str


class CustomerSource(Protocol):
    """A lookup of customers by caller number or by identification code."""

    async def by_number(self, account: str, number: CallerNumber) -> Found | None:
        """Return the customer calling from ``number`` in ``account``, or None.

        Raises `SourceError` when the source cannot answer.
        """
        ...

    async def by_code(self, account: str, code: str) -> Found | None:
        """Return the customer whose identification code is ``code``, or None.

        Raises `SourceError` when the source cannot answer.
        """
        ...
