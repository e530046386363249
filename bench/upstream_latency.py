"""What the upstream API costs a call, and what single flight saves it.

Runs a real router (SQLite file, FastAGI over TCP) whose upstream is the test suite's fake
API answering after a fixed latency, and places calls with the simulated Asterisk:

1. local: callers known to the local store (the baseline: one store read, one round trip);
2. cold: callers known only to the API, each asked for the first time (cache miss);
3. warm: the same callers again (cache hit);
4. burst: N simultaneous calls from one number the router has never seen.

For each it prints the median and 95th percentile of the decision time (the router's
``decide``, from the header block to the variables) and of the call time as the simulated
Asterisk sees it (connect to close), and what a cold decision costs beyond the request the
router made (timed by the router). Router, fake API and simulator share one event loop and
one CPU, so the figures are upper bounds of what the router adds.

    .venv/bin/python bench/upstream_latency.py [--latency-ms 50] [--calls 200] [--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastagi_router.agi import AGIRequest
from fastagi_router.app import Application
from fastagi_router.config import AGISettings, Settings, UpstreamSettings
from fastagi_router.model import Customer
from fastagi_router.routing import Decision
from fastagi_router.server import Answer
from fastagi_router.server.session import Session
from fastagi_router.simulator import Asterisk, CallSpec
from tests.fakes.upstream import FakeUpstream, Fault


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(name: str, values: list[float]) -> None:
    print(
        f"{name:<7} n={len(values):<4} median {statistics.median(values) * 1000:7.2f} ms"
        f"   p95 {pct(values, 0.95) * 1000:7.2f} ms"
    )


DECISIONS: list[float] = []


def timed(decide: Callable[[Session], Awaitable[Decision]]) -> Callable[..., Any]:
    async def wrapper(session: Session) -> Decision:
        started = time.perf_counter()
        try:
            return await decide(session)
        finally:
            DECISIONS.append(time.perf_counter() - started)

    return wrapper


def timed_now(route_now: Callable[[AGIRequest], Answer | None]) -> Callable[..., Any]:
    """The fast path's decisions (a local caller never reaches ``decide``): timed when it
    answers; when it does not, ``decide`` runs and is timed instead."""

    def wrapper(request: AGIRequest) -> Answer | None:
        started = time.perf_counter()
        answer = route_now(request)
        if answer is not None:
            DECISIONS.append(time.perf_counter() - started)
        return answer

    return wrapper


async def calls(
    asterisk: Asterisk, port: int, numbers: list[str]
) -> tuple[list[float], list[float]]:
    """Place one call per number, one at a time; return call times and decision times."""
    times = []
    DECISIONS.clear()
    for number in numbers:
        started = time.perf_counter()
        result = await asterisk.call(
            CallSpec(callerid=number, script="route?account=CL0000", port=port)
        )
        times.append(time.perf_counter() - started)
        assert result.status == "CUSTOMER", result.variables
    return times, list(DECISIONS)


async def main(latency_ms: int, count: int, burst: int) -> None:
    fake = await FakeUpstream().start()
    fake.always = Fault(latency=latency_ms / 1000)
    api_numbers = [f"09{n:08d}" for n in range(count)]
    local_numbers = [f"08{n:08d}" for n in range(count)]
    for number in [*api_numbers, "0912345678"]:
        fake.add_number("CL0000", "0084" + number[1:], destination1="207", destination2="209")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            db=f"{tmp}/bench.db",
            agi=AGISettings(listen="127.0.0.1:0"),
            upstream=UpstreamSettings(url=fake.url, token=fake.token),
        )
        app = await Application.start(settings)
        assert app.upstream is not None
        try:
            await app.store.import_customers(
                [Customer("CL0000", f"L{n}", phone_numbers=(f"+848{n:08d}",)) for n in range(count)]
            )
            app.router.decide = timed(app.router.decide)
            assert app.agi is not None
            app.agi.fast_handlers["route"] = timed_now(app.agi.fast_handlers["route"])
            port = app.agi.port
            asterisk = Asterisk(port=port)
            await calls(asterisk, port, local_numbers[:20])  # warm up the loop and the store
            local, local_d = await calls(asterisk, port, local_numbers)
            before = app.metrics.histogram_sum("upstream_request_duration_seconds")
            cold, cold_d = await calls(asterisk, port, api_numbers)
            request = (
                app.metrics.histogram_sum("upstream_request_duration_seconds") - before
            ) / count
            await app.upstream.wait_idle()
            warm, warm_d = await calls(asterisk, port, api_numbers)

            asked_before = len(fake.requests)
            spec = CallSpec(callerid="0912345678", script="route?account=CL0000", port=port)
            started = time.perf_counter()
            results = await asyncio.gather(*(asterisk.call(spec) for _ in range(burst)))
            burst_time = time.perf_counter() - started
            burst_requests = len(fake.requests) - asked_before
            sources = {r.variables["SMARTROUTING_SOURCE"] for r in results}
        finally:
            await app.stop(grace=2)
            await fake.close()

    print(f"fake upstream latency {latency_ms} ms; {count} calls per kind, one at a time")
    print("decision time (router)")
    show("local", local_d)
    show("cold", cold_d)
    show("warm", warm_d)
    print("call time (simulated Asterisk: connect to close)")
    show("local", local)
    show("cold", cold)
    show("warm", warm)
    extra = statistics.median(cold_d) - request
    print(
        f"cold decision = request {request * 1000:.2f} ms (mean, timed by the router) "
        f"+ {extra * 1000:.2f} ms (the local store read, the cache read, the flight)"
    )
    print(
        f"burst: {burst} simultaneous calls for one new number -> {burst_requests} request(s) "
        f"to the API; all answered in {burst_time * 1000:.0f} ms; sources {sorted(sources)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms, args.calls, args.burst))
