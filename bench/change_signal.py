"""What the hot layer's change check costs: the WAL-index header, read through a mapping
or with ``pread``, against PRAGMA data_version.

Two figures, each signal measured alternately in every repeat (the machine is shared):
the check alone (ns per call of `SQLiteStore.change_token_now` with the WAL-index watch
reading its mapping, the same watch reading with ``pread``, and the ``PRAGMA
data_version`` fallback), and a recognised call through the whole router in-process (as
`bench.inprocess`) with each signal in turn.

    python -m bench.change_signal [--repeats 7] [--checks 200000] [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench import seed
from bench.inprocess import _per_call
from fastagi_router.app import Application
from fastagi_router.config import HTTPSettings, LogSettings, Settings
from fastagi_router.store.hot import HotStore
from fastagi_router.store.sqlite import SQLiteStore
from fastagi_router.store.walindex import WalIndexWatch


def _check_ns(store: SQLiteStore, checks: int) -> float:
    check = store.change_token_now
    start = time.perf_counter()
    for _ in range(checks):
        check()
    return (time.perf_counter() - start) / checks * 1e9


def _report(name: str, unit: str, runs: dict[str, list[float]]) -> None:
    medians = {signal: statistics.median(values) for signal, values in runs.items()}
    for signal, values in runs.items():
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}, {signal}: median {medians[signal]:.1f} {unit} ({each})")
    base = medians["data_version"]
    for signal in ("wal-index", "wal-index-pread"):
        print(f"{name}: {signal} / data_version = {medians[signal] / base:.2f}")


async def main(repeats: int, checks: int, calls: int, tmp: str) -> None:
    settings = Settings(
        db=f"{tmp}/small.db", log=LogSettings(level="WARNING"), http=HTTPSettings(enabled=False)
    )
    app = await Application.start(settings)
    try:
        assert app.agi is not None and isinstance(app.store, HotStore)
        store = app.store.inner
        watch = store._wal_watch
        assert watch is not None and watch.mapped, "the store has no mapped WAL-index watch"
        unmapped = WalIndexWatch(watch.db_path, mapped=False)
        signals = {"wal-index": watch, "wal-index-pread": unmapped, "data_version": None}
        checked: dict[str, list[float]] = {name: [] for name in signals}
        routed: dict[str, list[float]] = {name: [] for name in signals}
        for _ in range(repeats):
            for name, signal in signals.items():
                store._wal_watch = signal
                checked[name].append(_check_ns(store, checks))
                routed[name].append(_per_call(app.agi, calls))
        store._wal_watch = watch
        _report("the check alone", "ns", checked)
        _report("recognised caller, whole router", "us per call", routed)
    finally:
        await app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--checks", type=int, default=200000)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fastagi-signal-") as directory:
        seed.prepare(Path(directory), large=False)
        asyncio.run(main(args.repeats, args.checks, args.calls, directory))
