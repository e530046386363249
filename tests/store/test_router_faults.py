"""Store faults under the running router: calls over TCP (simulated Asterisk), the REST API
over HTTP, the readiness probe, while the SQLite file is locked by another process, full,
or refused by the filesystem; then the fault goes away and everything works again.

The store is opened with a 1 s busy timeout (production: 5 s) to keep the tests short;
the bounds asserted are that timeout plus a margin for a loaded machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fastagi_router.simulator import CallSpec
from fastagi_router.store import SQLiteStore
from fastagi_router.store.hot import HotStore
from fastagi_router.store.sqlite import PING_TIMEOUT_MS
from tests.conftest import ADMIN_TOKEN
from tests.fakes.locker import Locker

BUSY_MS = 1000
MARGIN_S = 0.75
DEADLINE_S = 2.0
KNOWN = "0899990988"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """The store the router is started on (closed after the router has stopped)."""
    sqlite = await SQLiteStore.open(str(tmp_path / "router.db"), busy_timeout_ms=BUSY_MS)
    yield sqlite
    await sqlite.close()


class Probe:
    """Calls and HTTP requests to a started router, each timed."""

    def __init__(self, router: Any, http: aiohttp.ClientSession) -> None:
        self.router = router
        self.http = http

    async def call(self, callerid: str = KNOWN) -> tuple[Any, float]:
        started = time.monotonic()
        result = await self.router.asterisk.call(
            spec=None if callerid is None else _spec(self.router, callerid), timeout=30
        )
        return result, time.monotonic() - started

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any, float]:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.http.request(
            method, self.router.http_url + path, headers=headers, **kw
        ) as reply:
            body = await reply.json()
        return reply.status, body, time.monotonic() - started

    async def write(self, phone: str = "0899990977", agent: str = "105") -> tuple[int, Any, float]:
        return await self.request(
            "POST", "/v1/smartrouting", json={"phone_number": phone, "agent": agent}
        )


def _spec(router: Any, callerid: str) -> CallSpec:
    return CallSpec(callerid=callerid, port=router.app.agi.port)


async def sh(*command: str) -> tuple[int, str]:
    """Run a command; return its exit status and what it said on stderr."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


@pytest.fixture
async def probe(store: SQLiteStore, start_router: Any) -> AsyncIterator[Probe]:
    await store.set_route("default", KNOWN, "+84899990988", "104")
    router = await start_router(store=HotStore(store), prompt={"attempts": 0})
    async with aiohttp.ClientSession() as http:
        yield Probe(router, http)


def unavailable(status: int, body: Any) -> bool:
    return status == 503 and body["error"]["code"] == "store_unavailable"


async def test_a_write_lock_held_elsewhere_delays_no_call(
    probe: Probe, store: SQLiteStore, tmp_path: Path
) -> None:
    async with Locker(tmp_path / "router.db"):
        result, took = await probe.call()
        assert result.status == "AGENT" and result.round_trips == 1
        assert took < 0.5
        status, body, took = await probe.request("GET", "/v1/smartrouting")
        assert status == 200 and body["total"] == 1
        writes = await asyncio.gather(*(probe.write(f"08999909{n:02d}") for n in range(3)))
        for status, body, took in writes:
            assert unavailable(status, body), body
            assert took < BUSY_MS / 1000 + MARGIN_S, took  # one busy timeout for all three
        status, body, _ = await probe.request("GET", "/readyz")
        assert status == 200  # calls are answered from the store: ready
    status, body, _ = await probe.write()
    assert status == 200
    assert (await probe.call("0899990977"))[0].variables["SMARTROUTING_AGENT"] == "105"


async def test_read_locks_held_elsewhere_end_calls_and_requests_in_time(
    probe: Probe, store: SQLiteStore, tmp_path: Path
) -> None:
    """Another process holds the WAL-index read locks: SQLite retries every read for about
    10 s. The one loop-thread read that meets it first stalls (then loop-thread reads
    pause); every call after it ends in time with FALLBACK, the API answers 503 and the
    readiness probe 503, within their bounds; all is well once the locks are gone."""
    async with Locker(tmp_path / "router.db", "readers"):
        first, took = await probe.call()
        assert first.status == "FALLBACK", first.variables
        assert store.fast_stalls == 1
        results = await asyncio.gather(*(probe.call() for _ in range(5)))
        for result, took in results:
            assert result.status == "FALLBACK", result.variables
            assert took < DEADLINE_S + MARGIN_S, took
        status, body, took = await probe.request("GET", "/readyz")
        assert unavailable(status, body) and took < PING_TIMEOUT_MS / 1000 + MARGIN_S, took
        status, body, took = await probe.request("GET", "/v1/smartrouting")
        assert unavailable(status, body) and took < BUSY_MS / 1000 + MARGIN_S, took
        assert store.fast_stalls == 1  # paused: the loop stalled once, not at every call
    # Reads left in the thread's queue finish at once; the probe and calls recover.
    status, _, _ = await probe.request("GET", "/readyz")
    assert status == 200
    result, _ = await probe.call()
    assert result.status == "AGENT"


async def fill_up(probe: Probe) -> int:
    """Write routes until the store refuses one; return how many went in."""
    for n in range(2000):  # use up the free pages the file still has
        status, _, _ = await probe.write(f"+8489{n:07d}", "1")
        if status == 503:
            return n
    raise AssertionError("the store never filled up")


async def disk_full_then_room(probe: Probe, fill: Any, make_room: Any) -> None:
    written = await fill()
    result, took = await probe.call()
    assert result.status == "AGENT" and took < 0.5
    status, body, took = await probe.write()
    assert unavailable(status, body), body
    assert took < 1.0  # said at once: nothing to wait for
    status, body, _ = await probe.request("GET", "/v1/smartrouting")
    assert status == 200 and body["total"] == 1 + written  # the refused ones left nothing
    status, _, _ = await probe.request("GET", "/readyz")
    assert status == 200
    await make_room()
    status, body, _ = await probe.write()
    assert status == 200, body


async def test_a_full_store_refuses_writes_at_once_and_routes_calls(
    probe: Probe, store: SQLiteStore
) -> None:
    """SQLITE_FULL as SQLite reports a full disk, through ``max_page_count``."""

    async def fill() -> int:
        pages = next(iter(await store._writer.execute_fetchall("PRAGMA page_count")))[0]
        await store._writer.execute(f"PRAGMA max_page_count = {pages}")
        return await fill_up(probe)

    async def make_room() -> None:
        await store._writer.execute("PRAGMA max_page_count = 1073741823")

    await disk_full_then_room(probe, fill, make_room)


async def test_a_full_disk_refuses_writes_at_once_and_routes_calls(
    tiny_tmpfs: Path, start_router: Any
) -> None:
    store = await SQLiteStore.open(str(tiny_tmpfs / "router.db"), busy_timeout_ms=BUSY_MS)
    try:
        await store.set_route("default", KNOWN, "+84899990988", "104")
        router = await start_router(store=HotStore(store), prompt={"attempts": 0})
        filler = tiny_tmpfs / "filler"
        async with aiohttp.ClientSession() as http:
            probe = Probe(router, http)

            async def fill() -> int:
                free = _free_bytes(tiny_tmpfs)
                filler.write_bytes(b"\0" * max(free - 4096, 0))
                return await fill_up(probe)

            async def make_room() -> None:
                filler.unlink()

            await disk_full_then_room(probe, fill, make_room)
            await router.app.stop(grace=1.0)
    finally:
        await store.close()


def _free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


async def test_writes_refused_by_the_filesystem_are_503_and_calls_go_on(
    probe: Probe, tmp_path: Path
) -> None:
    """The kernel refuses to write the file (``chattr +i`` on the database and its WAL, as
    a filesystem gone read-only does): writes fail at once, reads go on."""
    files = [str(tmp_path / "router.db"), str(tmp_path / "router.db-wal")]
    status, said = await sh("chattr", "+i", *files)
    if status != 0:
        pytest.skip(f"cannot make the file immutable here: {said}")
    try:
        result, took = await probe.call()
        assert result.status == "AGENT" and took < 0.5
        status, body, took = await probe.write()
        assert unavailable(status, body) and took < 1.0, (body, took)
        status, _, _ = await probe.request("GET", "/readyz")
        assert status == 200
    finally:
        await sh("chattr", "-i", *files)
    status, body, _ = await probe.write()
    assert status == 200, body


async def test_a_read_only_filesystem_stops_serve_at_once_saying_why(tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    store = await SQLiteStore.open(str(rw / "router.db"))
    await store.close()
    status, said = await sh("mount", "--bind", str(rw), str(ro))
    if status == 0:
        status, said = await sh("mount", "-o", "remount,ro,bind", str(ro))
        if status != 0:
            await sh("umount", str(ro))
    if status != 0:
        pytest.skip(f"cannot mount read-only here: {said}")
    try:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fastagi_router",
            "serve",
            "--db",
            str(ro / "router.db"),
            "--agi",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 3, err
        assert b"store error" in err and b"router.db" in err, err
        assert time.monotonic() - started < 10
    finally:
        await sh("umount", str(ro))
