"""The SQLite schema, as an ordered list of migrations.

``PRAGMA user_version`` records the last migration applied. Migrations only ever append:
a released migration is never edited, a change is a new entry. Each runs in one transaction,
so a failed upgrade leaves the file as it was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` is the user_version after it runs."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "routes and customers",
        (
            """
            CREATE TABLE routes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                account TEXT NOT NULL,
                phone_number TEXT NOT NULL,
                number_key TEXT NOT NULL,
                agent TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                origin TEXT NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'learned')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                last_seen_at TEXT,
                UNIQUE (number_key, account)
            )
            """,
            "CREATE INDEX routes_account ON routes (account, id)",
            """
            CREATE TABLE customers (
                account TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                code TEXT,
                destination1 TEXT NOT NULL DEFAULT '',
                destination2 TEXT NOT NULL DEFAULT '',
                destination3 TEXT NOT NULL DEFAULT '',
                destination4 TEXT NOT NULL DEFAULT '',
                vip INTEGER NOT NULL DEFAULT 0,
                oncall INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (account, customer_id)
            ) WITHOUT ROWID
            """,
            "CREATE UNIQUE INDEX customers_code ON customers (code, account) "
            "WHERE code IS NOT NULL",
            """
            CREATE TABLE customer_numbers (
                number_key TEXT NOT NULL,
                account TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                PRIMARY KEY (number_key, account),
                FOREIGN KEY (account, customer_id) REFERENCES customers (account, customer_id)
                    ON DELETE CASCADE
            ) WITHOUT ROWID
            """,
            "CREATE INDEX customer_numbers_owner ON customer_numbers (account, customer_id)",
        ),
    ),
    Migration(
        2,
        "upstream API cache",
        (
            # One answer of the upstream customer API per (account, number or code): a
            # customer (found = 1) or "not found" (found = 0). fetched_at is Unix time, so
            # ages survive restarts.
            """
            CREATE TABLE upstream_cache (
                account TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('number', 'code')),
                lookup_key TEXT NOT NULL,
                found INTEGER NOT NULL CHECK (found IN (0, 1)),
                customer_id TEXT NOT NULL DEFAULT '',
                destination1 TEXT NOT NULL DEFAULT '',
                destination2 TEXT NOT NULL DEFAULT '',
                destination3 TEXT NOT NULL DEFAULT '',
                destination4 TEXT NOT NULL DEFAULT '',
                vip INTEGER NOT NULL DEFAULT 0,
                oncall INTEGER NOT NULL DEFAULT 0,
                fetched_at REAL NOT NULL,
                PRIMARY KEY (account, kind, lookup_key)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX upstream_cache_fetched ON upstream_cache (fetched_at)",
        ),
    ),
    Migration(
        3,
        "audit log",
        (
            # One row per administrative write (REST API, CLI) or system purge, written in
            # the transaction of the change it records. ``at`` is UTC text like the other
            # tables' times; ``account`` is NULL for a change that spans every account.
            # ``detail`` never holds a phone number: ``target`` does, and an erasure
            # redacts it there.
            """
            CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                account TEXT,
                target TEXT NOT NULL DEFAULT '',
                detail TEXT NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX audit_log_at ON audit_log (at)",
            "CREATE INDEX audit_log_account ON audit_log (account, id)",
            "CREATE INDEX audit_log_target ON audit_log (target)",
        ),
    ),
    Migration(
        4,
        "expiry index",
        (
            # The hourly purge deletes learned routes last seen before a cut-off, in
            # batches: without this index every batch scanned the whole table.
            "CREATE INDEX routes_learned_seen ON routes (coalesce(last_seen_at, updated_at))"
            " WHERE origin = 'learned'",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
