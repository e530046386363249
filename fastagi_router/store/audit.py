"""The audit log's SQL and its time filters, shared by the store and the upstream cache.

Every audited write calls `record` on the connection of its own transaction, so a change and
its entry are committed together or not at all. The statements use no construct SQLite
alone has (only the ``?`` placeholders would change), so a PostgreSQL store can share them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from fastagi_router.errors import ValidationError
from fastagi_router.model import AuditEntry
from fastagi_router.store.base import AuditQuery

COLUMNS = "id, at, actor, action, account, target, detail"
_INSERT = (
    "INSERT INTO audit_log (at, actor, action, account, target, detail) VALUES (?, ?, ?, ?, ?, ?)"
)
_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ](?P<hm>[0-9]{2}:[0-9]{2})(?P<s>:[0-9]{2})?(?:\.[0-9]+)?(?:Z|\+00:?00)?)?"
)


def timestamp(posix: float) -> str:
    """The store's time format: UTC, to the second, so that text order is time order."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(posix))


def parse_time(text: str, field: str) -> str:
    """Return a UTC time given as ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS]`` or ISO 8601 with
    ``T`` and an optional ``Z``, in the store's format. Raises `ValidationError` naming
    ``field``."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValidationError(
            f"{field} must be a UTC time: YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or "
            f"YYYY-MM-DDTHH:MM:SSZ, not {text[:40]!r}",
            field=field,
        )
    value = f"{match['date']} {match['hm'] or '00:00'}{match['s'] or ':00'}"
    try:
        time.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise ValidationError(f"{field}: {text[:40]!r} is not a valid time", field=field) from exc
    return value


async def record(db: aiosqlite.Connection, entry: AuditEntry, at: str) -> None:
    """Insert ``entry`` in the transaction open on ``db``."""
    await db.execute(
        _INSERT, (at, entry.actor, entry.action, entry.account, entry.target, entry.detail)
    )


def where(query: AuditQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (never empty: ``1 = 1`` at least) and parameters of ``query``."""
    clauses = ["1 = 1"]
    params: list[Any] = []
    for column, op, value in (
        ("at", ">=", query.since),
        ("at", "<", query.until),
        ("actor", "=", query.actor),
        ("action", "=", query.action),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    if query.accounts is not None:
        accounts = sorted(query.accounts)
        if not accounts:
            clauses.append("1 = 0")
        else:
            clauses.append(f"account IN ({', '.join('?' * len(accounts))})")
            params.extend(accounts)
    return " AND ".join(clauses), params


def entry(row: Sequence[Any]) -> AuditEntry:
    """An `AuditEntry` from a row of `COLUMNS`."""
    return AuditEntry(
        id=row[0],
        at=row[1],
        actor=row[2],
        action=row[3],
        account=row[4],
        target=row[5],
        detail=row[6],
    )
