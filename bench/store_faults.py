"""What calls, the REST API and the readiness probe get while the store is in trouble.

Starts a router as ``serve`` does (SQLite file with the hot-number layer, production
timings: ``deadline_ms`` 2000, a 5 s busy timeout) with a sticky agent for one caller,
then, for each fault, times: ``--calls`` simultaneous calls from that caller (simulated
Asterisk over TCP; then as many again), an API read, ``--writes`` simultaneous API writes,
``/readyz``; then lifts the fault and times one call and one write again.

* ``write_lock``: another process holds the write lock (``BEGIN IMMEDIATE``), as a long
  import from the CLI or an ``sqlite3`` shell left in a transaction does;
* ``read_locks``: another process holds the WAL-index read locks (tests/fakes/locker.py);
* ``full``: SQLite answers SQLITE_FULL (``PRAGMA max_page_count``), as on a full disk.

    .venv/bin/python bench/store_faults.py [--calls 10] [--writes 3] [--fault NAME]...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastagi_router.app import Application
from fastagi_router.simulator import Asterisk, CallSpec
from fastagi_router.store.hot import HotStore
from fastagi_router.store.sqlite import SQLiteStore
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fakes.locker import Locker

T = TypeVar("T")
FAULTS = ("write_lock", "read_locks", "full")


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


@contextlib.asynccontextmanager
async def fault(name: str, app: Application, db: Path) -> AsyncIterator[None]:
    if name in ("write_lock", "read_locks"):
        async with Locker(db, "write" if name == "write_lock" else "readers"):
            yield
        return
    store = app.store.inner if isinstance(app.store, HotStore) else app.store
    assert isinstance(store, SQLiteStore)
    writer = store._writer
    pages = next(iter(await writer.execute_fetchall("PRAGMA page_count")))[0]
    await writer.execute(f"PRAGMA max_page_count = {pages}")
    try:
        yield
    finally:
        await writer.execute("PRAGMA max_page_count = 1073741823")


async def run(name: str, args: argparse.Namespace, tmp: Path) -> None:
    settings = make_settings(tmp / name, prompt={"attempts": 0})
    (tmp / name).mkdir()
    app = await Application.start(settings)
    assert app.http is not None
    await app.store.set_route("default", "0899990988", "+84899990988", "104")
    asterisk = Asterisk(port=app.agi.port)
    url = f"http://127.0.0.1:{app.http.port}"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    serial = iter(range(10**6))

    async def call() -> str:
        result = await asterisk.call(CallSpec(callerid="0899990988", port=app.agi.port))
        return f"{result.status or 'none'}/{result.variables.get('SMARTROUTING_REASON') or '-'}"

    async def request(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> str:
        async with http.request(method, url + path, headers=headers, **kw) as reply:
            body = await reply.json()
            code = body["error"]["code"] if "error" in body else ""
            return f"{reply.status} {code}".strip()

    def write(http: aiohttp.ClientSession) -> Awaitable[str]:
        phone = f"+8489{next(serial):07d}"
        return request(http, "POST", "/v1/smartrouting", json={"phone_number": phone, "agent": "1"})

    def show(what: str, results: list[tuple[str, float]]) -> None:
        ends = Counter(r for r, _ in results)
        times = sorted(t for _, t in results)
        print(
            f"  {what:<22} max {times[-1] * 1000:7.0f} ms  "
            f"median {times[len(times) // 2] * 1000:7.0f} ms  "
            + ", ".join(f"{k} x{v}" for k, v in ends.items())
        )

    try:
        async with aiohttp.ClientSession() as http:
            print(f"{name}:")
            async with fault(name, app, Path(settings.db)):
                if name == "full":  # use up the free pages the file still has
                    while (await write(http)).startswith("200"):
                        pass
                for what in ("calls at once", "calls at once, again"):
                    calls = [timed(call()) for _ in range(args.calls)]
                    show(what, await asyncio.gather(*calls))
                show("API read", [await timed(request(http, "GET", "/v1/smartrouting"))])
                show(
                    "API writes at once",
                    await asyncio.gather(*(timed(write(http)) for _ in range(args.writes))),
                )
                show("/readyz", [await timed(request(http, "GET", "/readyz"))])
            show("call, fault lifted", [await timed(call())])
            show("write, fault lifted", [await timed(write(http))])
    finally:
        await app.stop(grace=1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--writes", type=int, default=3)
    parser.add_argument("--fault", action="append", choices=FAULTS)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.fault or FAULTS:
            await run(name, args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
