"""How long calls take, and how they end, while the upstream API fails.

For each way the API fails (`tests.fakes.upstream_modes`: down, refusing, 10 s slow,
half-open, a stalled body, garbage, flapping, ...), starts a fresh router (SQLite file,
FastAGI over TCP, product timings unless told otherwise) pointed at the failing API and
places ``--calls`` calls from callers only the API knows, ``--concurrency`` at a time, with
the simulated Asterisk. Prints, per mode, the call time as Asterisk sees it (connect to
close: median, p99, max) against the deadline, how many calls outlasted it, and how the
calls ended (SMARTROUTING_STATUS/REASON).

With the circuit breaker on (the default), most calls after the first failures end at once
with ``circuit_open``; ``--breaker-failures 1000000`` makes every call meet the fault.

    .venv/bin/python bench/upstream_faults.py [--calls 200] [--concurrency 20]
        [--deadline-ms 2000] [--timeout-ms 1000] [--breaker-failures 5] [--mode NAME]...
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastagi_router.app import Application
from fastagi_router.config import (
    AGISettings,
    HTTPSettings,
    PromptSettings,
    Settings,
    UpstreamSettings,
)
from fastagi_router.simulator import Asterisk, CallResult, CallSpec
from tests.fakes.upstream_modes import ACCOUNT, MODES, FaultMode, number


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_mode(mode: FaultMode, args: argparse.Namespace, tmp: str) -> None:
    async with mode.serve(args.calls) as url:
        settings = Settings(
            db=f"{tmp}/{mode.name}.db",
            default_region="FR",
            deadline_ms=args.deadline_ms,
            agi=AGISettings(listen="127.0.0.1:0"),
            http=HTTPSettings(enabled=False),
            prompt=PromptSettings(attempts=0),
            upstream=UpstreamSettings(
                url=url,
                token="t0k3n",
                timeout_ms=args.timeout_ms,
                breaker_failures=args.breaker_failures,
            ),
        )
        app = await Application.start(settings)
        asterisk = Asterisk(port=app.agi.port)
        limit = asyncio.Semaphore(args.concurrency)

        async def call(n: int) -> CallResult:
            spec = CallSpec(callerid=number(n), script=f"route?account={ACCOUNT}")
            async with limit:
                return await asterisk.call(spec, timeout=args.deadline_ms / 1000 + 30)

        started = time.perf_counter()
        try:
            results = await asyncio.gather(*(call(n) for n in range(args.calls)))
        finally:
            await app.stop(grace=2)
        wall = time.perf_counter() - started
    times = [r.elapsed for r in results]
    deadline = args.deadline_ms / 1000
    over = sum(t > deadline for t in times)
    ends = Counter(
        f"{r.status or 'none'}/{r.variables.get('SMARTROUTING_REASON') or '-'}" for r in results
    )
    print(
        f"{mode.name:<14} n={len(times):<5} median {pct(times, 0.5) * 1000:7.1f} ms  "
        f"p99 {pct(times, 0.99) * 1000:7.1f} ms  max {max(times) * 1000:7.1f} ms  "
        f"over deadline {over:<3} (all in {wall:5.2f} s)  "
        + ", ".join(f"{k} {v}" for k, v in ends.most_common())
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--deadline-ms", type=int, default=2000)
    parser.add_argument("--timeout-ms", type=int, default=1000)
    parser.add_argument("--breaker-failures", type=int, default=5)
    parser.add_argument("--mode", action="append", choices=[m.name for m in MODES])
    args = parser.parse_args()
    # The router logs every failure; here only the figures matter.
    logging.disable(logging.CRITICAL)
    print(
        f"{args.calls} calls per mode, {args.concurrency} at a time; deadline_ms "
        f"{args.deadline_ms}, upstream.timeout_ms {args.timeout_ms}, breaker_failures "
        f"{args.breaker_failures}; call time = connect to close, as Asterisk sees it"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            if args.mode is None or mode.name in args.mode:
                await run_mode(mode, args, tmp)


if __name__ == "__main__":
    asyncio.run(main())
