"""Where customers are looked up beyond the local store.

The local store is always consulted first, in one read that also returns the sticky agent.
A `CustomerSource` is consulted after it, in order, when the local store does not know the
caller: the upstream customer API (through its cache) is one. A source answers `Found`
(with the SMARTROUTING_SOURCE word that says where the answer came from), None when it does
not know the caller, or raises `SourceError` whose ``reason`` ends the call as FALLBACK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastagi_router.model import Customer
from fastagi_router.phone import CallerNumber


def _no_budget() -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class Found:
    """A customer, and where it came from: ``local``, ``cache``, ``api`` or ``stale``."""

    customer: Customer
    source: str


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a source may need to know about the call it answers for.

    ``extension`` is ``agi_extension`` (the number dialled); ``remaining()`` returns the
    seconds left of the call's router-time budget, or None when there is no deadline, so a
    source that can be slow gives up in time for the call to be answered anyway.
    """

    uniqueid: str = ""
    extension: str = ""
    remaining: Callable[[], float | None] = _no_budget


class CustomerSource(Protocol):
    """A lookup of customers by caller number or by identification code."""

    async def by_number(
        self, account: str, number: CallerNumber, *, call: CallContext | None = None
    ) -> Found | None:
        """Return the customer calling from ``number`` in ``account``, or None.

        Raises `SourceError` when the source cannot answer.
        """
        ...

    async def by_code(
        self, account: str, code: str, *, call: CallContext | None = None
    ) -> Found | None:
        """Return the customer whose identification code is ``code``, or None.

        Raises `SourceError` when the source cannot answer.
        """
        ...
