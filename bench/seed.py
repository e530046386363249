"""Stores for the benchmark: a small one and one with a million routes and customers.

The schema is created by the router itself (`SQLiteStore.open` runs the migrations); rows
are then written in bulk with sqlite3, in the router's normalised form, since a million
one-by-one API writes would measure the writes, not the lookups.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from fastagi_router.store import SQLiteStore

LARGE = 1_000_000
_NOW = "2026-01-01 00:00:00"


def number(index: int) -> tuple[str, str]:
    """The national form and the E.164 key of the ``index``-th seeded caller."""
    national = f"09{index:08d}"
    return national, "+84" + national[1:]


async def _create(path: Path) -> None:
    store = await SQLiteStore.open(str(path))
    await store.close()


def fill(path: Path, rows: int) -> float:
    """Create ``path`` with ``rows`` routes and ``rows`` customers; return seconds taken."""
    start = time.monotonic()
    asyncio.run(_create(path))
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    with db:
        db.executemany(
            "INSERT INTO routes (account, phone_number, number_key, agent, description, origin,"
            " created_at, updated_at) VALUES ('default', ?, ?, ?, '', 'manual', ?, ?)",
            ((*number(i), str(100 + i % 900), _NOW, _NOW) for i in range(rows)),
        )
        db.executemany(
            "INSERT INTO customers (account, customer_id, name, code, destination1,"
            " destination2, created_at, updated_at) VALUES ('default', ?, ?, ?, ?, ?, ?, ?)",
            (
                (f"C{i}", f"Customer {i}", f"{i:07d}", f"q{i % 50}", "overflow", _NOW, _NOW)
                for i in range(rows)
            ),
        )
        db.executemany(
            "INSERT INTO customer_numbers (number_key, account, customer_id) "
            "VALUES (?, 'default', ?)",
            ((number(i)[1], f"C{i}") for i in range(rows)),
        )
    db.execute("ANALYZE")
    db.close()
    return time.monotonic() - start


def prepare(directory: Path, *, large: bool) -> None:
    """Write ``small.db`` (the three scenario callers) and, if asked, ``large.db``."""
    small = directory / "small.db"
    asyncio.run(_create(small))
    db = sqlite3.connect(small)
    with db:
        db.execute(
            "INSERT INTO routes (account, phone_number, number_key, agent, created_at,"
            " updated_at) VALUES ('default', '0899990988', '+84899990988', '104', ?, ?)",
            (_NOW, _NOW),
        )
        db.execute(
            "INSERT INTO customers (account, customer_id, name, code, destination1,"
            " destination2, destination3, destination4, vip, created_at, updated_at)"
            " VALUES ('default', 'C1', 'ACME', '1234', '207', '209', '214', '216', 1, ?, ?)",
            (_NOW, _NOW),
        )
        db.executemany(
            "INSERT INTO customer_numbers VALUES (?, 'default', 'C1')",
            [("+84899990988",), ("+84899990977",)],
        )
    db.close()
    if large:
        print(f"seeding {LARGE} routes and customers ...", flush=True)
        print(f"seeded in {fill(directory / 'large.db', LARGE):.1f} s", flush=True)
