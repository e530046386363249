"""``kill -9`` of a serving router in the middle of a burst of writes, then the checks.

`crash_round` starts ``fastagi-router serve`` on a store file, has ``workers`` clients
write through the REST API as fast as they can, kills the process with SIGKILL after
``kill_after`` seconds, and then checks the file:

* ``PRAGMA integrity_check`` says ``ok``;
* every write that was acknowledged (200 received) is there: each new route; for the
  record a worker keeps updating (its route and its customer), a version at least the last
  acknowledged one and at most the last sent; every customer of an acknowledged import;
* an import that was not acknowledged is there whole or not at all;

then starts ``serve`` again on the file and checks that it answers with what was written.
Used by ``tests/test_kill9.py`` (a few rounds) and ``bench/kill9.py`` (many, with counts).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.served import SERVED_TOKEN, Served

IMPORT_ROWS = 5
_HEADER = "account,customer_id,name,phone_numbers,code,destination1,destination2,destination3,"
_HEADER += "destination4,vip,oncall\n"


@dataclass
class Worker:
    """What one client sent and what was acknowledged."""

    n: int
    inserted: list[tuple[str, str]] = field(default_factory=list)  # (number key, agent)
    route_sent: int = 0
    route_acked: int = 0
    customer_sent: int = 0
    customer_acked: int = 0
    imports_acked: list[list[str]] = field(default_factory=list)
    imports_unacked: list[list[str]] = field(default_factory=list)
    #: Writes answered 200, and writes that got anything else (an error, a reset, nothing).
    acked: int = 0
    failed: int = 0

    @property
    def phone(self) -> str:
        return f"+3314{self.n:07d}"


@dataclass
class RoundResult:
    """``acknowledged``/``unacknowledged``: writes answered 200 / not; ``checked``: the
    checks made (one per new route and per import, one per updated record); ``lost``: what
    an acknowledged write left missing (must stay empty)."""

    acknowledged: int = 0
    unacknowledged: int = 0
    checked: int = 0
    lost: list[str] = field(default_factory=list)
    integrity: str = ""
    restarted_ok: bool = False

    def __str__(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, unacknowledged {self.unacknowledged}, "
            f"checked {self.checked}, lost {len(self.lost)}, integrity {self.integrity}, "
            f"restart {'ok' if self.restarted_ok else 'FAILED'}"
        )


async def _post(http: aiohttp.ClientSession, url: str, **kw: Any) -> bool:
    """True when the server acknowledged the write (200); False on any other outcome."""
    try:
        async with http.request(kw.pop("method", "POST"), url, **kw) as reply:
            await reply.read()
            return reply.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def _work(
    worker: Worker, http: aiohttp.ClientSession, base: str, stop: asyncio.Event
) -> None:
    counter = itertools.count()
    while not stop.is_set():
        step = next(counter)
        kind = step % 4
        if kind == 0:  # a new route
            phone = f"+3315{worker.n:03d}{step:05d}"
            agent = f"w{worker.n}s{step}"
            ok = await _post(
                http, f"{base}/v1/smartrouting", json={"phone_number": phone, "agent": agent}
            )
            if ok:
                worker.inserted.append((phone, agent))
        elif kind == 1:  # the worker's own route, updated
            worker.route_sent += 1
            version = worker.route_sent
            ok = await _post(
                http,
                f"{base}/v1/smartrouting",
                json={"phone_number": worker.phone, "agent": f"v{version}"},
            )
            if ok:
                worker.route_acked = version
        elif kind == 2:  # the worker's own customer, replaced
            worker.customer_sent += 1
            version = worker.customer_sent
            ok = await _post(
                http, f"{base}/v1/customers/W{worker.n}", method="PUT", json={"name": f"v{version}"}
            )
            if ok:
                worker.customer_acked = version
        else:  # an import of several customers, in one transaction
            ids = [f"I{worker.n}x{step}x{r}" for r in range(IMPORT_ROWS)]
            body = _HEADER + "".join(f"default,{cid},imported,,,q,,,,0,0\n" for cid in ids)
            ok = await _post(
                http,
                f"{base}/v1/customers/import",
                data=body.encode(),
                headers={"Content-Type": "text/csv"},
            )
            (worker.imports_acked if ok else worker.imports_unacked).append(ids)
        if ok:
            worker.acked += 1
        else:
            worker.failed += 1
            if stop.is_set():
                return


def _version(text: str | None) -> int:
    return int(text[1:]) if text and text.startswith("v") else 0


def check_file(db: Path, workers: list[Worker], result: RoundResult) -> None:
    """Open the file as another process would after the crash and check every write."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        result.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        routes = dict(
            conn.execute("SELECT number_key, agent FROM routes WHERE account = 'default'")
        )
        customers = dict(
            conn.execute("SELECT customer_id, name FROM customers WHERE account = 'default'")
        )
    finally:
        conn.close()
    for w in workers:
        for phone, agent in w.inserted:
            result.checked += 1
            if routes.get(phone) != agent:
                result.lost.append(f"route {phone} -> {agent} (found {routes.get(phone)})")
        if w.route_acked:
            result.checked += 1
            stored = _version(routes.get(w.phone))
            if not w.route_acked <= stored <= w.route_sent:
                result.lost.append(f"route {w.phone}: v{stored}, acknowledged v{w.route_acked}")
        if w.customer_acked:
            result.checked += 1
            stored = _version(customers.get(f"W{w.n}"))
            if not w.customer_acked <= stored <= w.customer_sent:
                result.lost.append(f"customer W{w.n}: v{stored}, acked v{w.customer_acked}")
        for ids in w.imports_acked:
            result.checked += 1
            missing = [cid for cid in ids if cid not in customers]
            if missing:
                result.lost.append(f"import {ids[0]}..: {len(missing)} customers missing")
        for ids in w.imports_unacked:
            present = sum(cid in customers for cid in ids)
            if present not in (0, len(ids)):
                result.lost.append(f"import {ids[0]}.. half there: {present} of {len(ids)}")


async def crash_round(
    tmp: Path, *, workers: int = 24, kill_after: float = 0.6, start_timeout: float = 20.0
) -> RoundResult:
    """One round on a fresh store in ``tmp``; returns what was found (see the module)."""
    db = tmp / "crash.db"
    served = await Served(db, tmp / "serve.log").start(start_timeout)
    headers = {"Authorization": f"Bearer {SERVED_TOKEN}"}
    team = [Worker(n) for n in range(workers)]
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=workers)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as http:
        tasks = [asyncio.create_task(_work(w, http, served.url, stop)) for w in team]
        try:
            await asyncio.sleep(kill_after)
            await served.kill()  # SIGKILL, mid-burst
            stop.set()
            async with asyncio.timeout(15):
                await asyncio.gather(*tasks)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await served.kill()
    result = RoundResult()
    for w in team:
        result.acknowledged += w.acked
        result.unacknowledged += w.failed
    check_file(db, team, result)
    # The router starts again on the file and serves what was written.
    async with Served(db, tmp / "serve-again.log") as again:
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(f"{again.url}/readyz") as reply:
                ready = reply.status == 200
            sample = next((w for w in team if w.inserted), None)
            seen = True
            if sample is not None:
                phone, agent = sample.inserted[-1]
                async with http.get(
                    f"{again.url}/v1/smartrouting/{phone.replace('+', '%2B')}"
                ) as reply:
                    seen = reply.status == 200 and (await reply.json())["agent"] == agent
        result.restarted_ok = ready and seen
        await again.terminate()
    return result
