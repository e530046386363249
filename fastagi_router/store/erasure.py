"""The statements of an erasure: a caller's number removed from every table, in the
transaction the store opens for it. No construct SQLite alone has (only the ``?``
placeholders would change), so a PostgreSQL store can share them."""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from fastagi_router.model import REDACTED, AuditEntry
from fastagi_router.store import audit
from fastagi_router.store.base import Erasure


async def erase(
    db: aiosqlite.Connection,
    number_keys: Sequence[str],
    account: str | None,
    actor: str,
    now: str,
) -> Erasure:
    """Erase ``number_keys`` (every spelling of one number, its key first) in ``account``
    (None: every account) within the transaction open on ``db``; audit it without the
    number. See `Store.erase_caller` for what goes."""
    keys = list(dict.fromkeys(number_keys))
    if not keys:
        raise ValueError("an erasure needs at least one number key")
    scope, scoped = ("account = ?", [account]) if account is not None else ("1 = 1", [])
    marks = ", ".join("?" * len(keys))
    routes = await db.execute(
        f"DELETE FROM routes WHERE (number_key IN ({marks}) OR phone_number IN ({marks})) "  # noqa: S608
        f"AND {scope}",
        [*keys, *keys, *scoped],
    )
    owners = list(
        await db.execute_fetchall(
            f"SELECT DISTINCT account, customer_id FROM customer_numbers "  # noqa: S608
            f"WHERE number_key IN ({marks}) AND {scope}",
            [*keys, *scoped],
        )
    )
    numbers = await db.execute(
        f"DELETE FROM customer_numbers WHERE number_key IN ({marks}) AND {scope}",  # noqa: S608
        [*keys, *scoped],
    )
    customers = 0
    for owner_account, customer_id in owners:
        # A record left without any number was that caller's: its name and code go too.
        cursor = await db.execute(
            "DELETE FROM customers WHERE account = ? AND customer_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM customer_numbers AS n WHERE n.account = customers.account "
            " AND n.customer_id = customers.customer_id)",
            (owner_account, customer_id),
        )
        customers += cursor.rowcount
        if not cursor.rowcount:
            await db.execute(
                "UPDATE customers SET updated_at = ? WHERE account = ? AND customer_id = ?",
                (now, owner_account, customer_id),
            )
    cache = await db.execute(
        f"DELETE FROM upstream_cache WHERE kind = 'number' AND lookup_key IN ({marks}) "  # noqa: S608
        f"AND {scope}",
        [*keys, *scoped],
    )
    # Entries hold a number only as their target (never in the detail): see store/audit.py.
    redacted = await db.execute(
        f"UPDATE audit_log SET target = ? WHERE target IN ({marks}) AND {scope}",  # noqa: S608
        [REDACTED, *keys, *scoped],
    )
    done = Erasure(
        number_key=keys[0],
        account=account,
        routes=routes.rowcount,
        customer_numbers=numbers.rowcount,
        customers=customers,
        cache_entries=cache.rowcount,
        audit_entries=redacted.rowcount,
    )
    detail = " ".join(f"{name}={count}" for name, count in done.counts().items())
    await audit.record(db, AuditEntry(actor, "caller.erase", account, "", detail), now)
    return done
