"""What the audit log, erasure and retention cost on a large store.

Seeds a store with ``--rows`` routes and customers (`bench.seed`), as many learned routes
last seen long ago, and as many old audit entries, then measures through `SQLiteStore`:

* a route write with its audit entry against the same write without one (alternating);
* the erasure of one caller (every spelling, routes, customers, cache, audit targets);
* the retention purge in `Retention`'s batches: write-lock time per batch (each batch is
  one transaction) and in all, for the learned routes and for the audit entries.

    python -m bench.data_ops [--rows 1000000] [--writes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench import seed
from fastagi_router.phone import NumberParser
from fastagi_router.retention import BATCH
from fastagi_router.store import SQLiteStore

_OLD = "2020-01-01 00:00:00"
_CUTOFF = "2021-01-01 00:00:00"


def _add_old_rows(path: Path, rows: int) -> None:
    """``rows`` learned routes (another account) and ``rows`` audit entries, all old."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    with db:
        db.executemany(
            "INSERT INTO routes (account, phone_number, number_key, agent, origin, created_at,"
            " updated_at, last_seen_at) VALUES ('learned', ?, ?, '101', 'learned', ?, ?, ?)",
            ((*seed.number(i), _OLD, _OLD, _OLD) for i in range(rows)),
        )
        db.executemany(
            "INSERT INTO audit_log (at, actor, action, account, target, detail)"
            " VALUES (?, 'cli:bench', 'route.update', 'default', ?, 'agent=101->102')",
            ((_OLD, seed.number(i)[1]) for i in range(rows)),
        )
    db.close()


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:.2f} ms, max {max(values) * 1e3:.2f} ms"


async def _batches(purge: object) -> tuple[list[float], int]:
    times: list[float] = []
    total = 0
    while True:
        start = time.perf_counter()
        count = await purge()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
        total += count
        if count < BATCH:
            return times, total


async def measure(path: Path, writes: int) -> None:
    store = await SQLiteStore.open(str(path))
    try:
        plain: list[float] = []
        audited: list[float] = []
        for i in range(writes):
            national, key = seed.number(i)
            for actor, into in ((None, plain), ("cli:bench", audited)):
                start = time.perf_counter()
                await store.set_route("default", national, key, str(200 + i % 700), actor=actor)
                into.append(time.perf_counter() - start)
        print(f"route write, no audit entry:   {_ms(plain)} ({writes} writes)")
        print(f"route write, with audit entry: {_ms(audited)} ({writes} writes)")

        numbers = NumberParser("VN")
        erasures: list[float] = []
        for i in range(5):
            number = numbers.parse(seed.number(writes + i)[0])
            start = time.perf_counter()
            await store.erase_caller(numbers.spellings(number), None, actor="cli:bench")
            erasures.append(time.perf_counter() - start)
        print(f"erasure of one caller:         {_ms(erasures)} ({len(erasures)} callers)")

        times, total = await _batches(
            lambda: store.expire_learned(_CUTOFF, actor="system:expiry", limit=BATCH)
        )
        print(
            f"expiry of {total} learned routes, {len(times)} batches: {_ms(times)} a batch, "
            f"{sum(times):.1f} s in all"
        )
        times, total = await _batches(lambda: store.prune_audit(_CUTOFF, limit=BATCH))
        print(
            f"pruning of {total} audit entries, {len(times)} batches: {_ms(times)} a batch, "
            f"{sum(times):.1f} s in all"
        )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=seed.LARGE)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fastagi-data-ops-") as directory:
        path = Path(directory) / "data.db"
        print(f"seeding {args.rows} routes, customers, learned routes and audit entries ...")
        seed.fill(path, args.rows)
        _add_old_rows(path, args.rows)
        asyncio.run(measure(path, args.writes))


if __name__ == "__main__":
    main()
