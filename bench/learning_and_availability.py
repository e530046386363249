"""Figures for the sticky-agent work, on loopback, against the fakes the tests use.

    python bench/learning_and_availability.py [--calls 2000] [--learn 1000] [--flood 4000]
                                              [--rate CALLS_PER_SECOND]

1. Call latency for a caller with a sticky agent, availability check off and on (one and
   two round trips), as the simulated Asterisk sees it.
2. The event interpreter alone: recorded events per second through `CallTracker.feed`.
3. Learning end to end: the fake Manager, in its own process as Asterisk would be, replays
   queue calls over TCP as fast as it can; time until every one is in the SQLite file.
4. Call latency while that Manager streams events (as fast as it can, or ``--rate`` calls
   a second, each call the recording's 91 events), against the idle figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panoramisk.message import Message

from fastagi_router.ami import CallTracker, ManagerState
from fastagi_router.app import Application
from fastagi_router.config import LearningSettings
from fastagi_router.phone import NumberParser
from fastagi_router.simulator import Asterisk, CallSpec
from tests.ami.support import eventually
from tests.conftest import make_settings
from tests.fakes.ami import QUEUE_CALL, FakeManager, load

QUEUE = load(QUEUE_CALL)


def call_blocks(n: int) -> list[bytes]:
    """The recorded queue call, as call ``n``: its own ids and caller number."""
    number = f"0899{n:06d}".encode()
    return [
        b.replace(b"1795654442.20", f"9{n}.20".encode())
        .replace(b"1795654442.21", f"9{n}.21".encode())
        .replace(b"0899990988", number)
        for b in QUEUE.events
    ]


def ms(values: list[float]) -> str:
    values = sorted(values)
    p50 = statistics.median(values) * 1000
    p99 = values[int(len(values) * 0.99) - 1] * 1000
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {values[-1] * 1000:.2f} ms"


async def latency(app: Application, calls: int) -> tuple[list[float], set[int]]:
    asterisk = Asterisk(port=app.agi.port, device_states={"PJSIP/104": "NOT_INUSE"})
    spec = CallSpec(callerid="0899990988", port=app.agi.port)
    elapsed: list[float] = []
    trips: set[int] = set()
    for _ in range(calls):
        result = await asterisk.call(spec)
        assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
        elapsed.append(result.elapsed)
        trips.add(result.round_trips)
    return elapsed, trips


async def availability(tmp: Path, calls: int) -> None:
    for enabled in (False, True):
        settings = make_settings(tmp, availability={"enabled": enabled})
        app = await Application.start(settings)
        try:
            await app.store.set_route("default", "0899990988", "+84899990988", "104")
            await latency(app, 50)  # warm up
            elapsed, trips = await latency(app, calls)
        finally:
            await app.stop()
        state = "on " if enabled else "off"
        print(f"availability {state}: {calls} calls, round trips {sorted(trips)}, {ms(elapsed)}")


def interpreter(replays: int) -> None:
    messages = []
    for n in range(replays):
        for block in call_blocks(n):
            message = Message.from_line(block.decode().strip())
            assert message is not None
            messages.append(message)
    tracker = CallTracker(LearningSettings(), NumberParser("VN"))
    start = time.perf_counter()
    learned = sum(1 for m in messages if tracker.feed(m, 0.0) is not None)
    took = time.perf_counter() - start
    print(
        f"interpreter: {len(messages)} events in {took * 1000:.0f} ms "
        f"({len(messages) / took:,.0f} events/s), {learned} facts"
    )


async def manager_process(count: int, flood: int, rate: float) -> None:
    """The fake Manager on its own: port on stdout, then streams on each line of stdin
    (``flood`` paced at ``rate`` calls per second, 0: as fast as it can)."""
    fake = FakeManager()
    await fake.start(0)
    print(fake.port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    batches = {b"learn\n": range(count), b"flood\n": range(count, count + flood)}
    while line := await reader.readline():
        sent = 0
        start = loop.time()
        for i, n in enumerate(batches[line]):
            if rate and line == b"flood\n":
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            sent += await fake.send(call_blocks(n))
        print(f"sent {sent}", flush=True)
    await fake.stop()


async def learning(tmp: Path, count: int, flood: int, calls: int, rate: float) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--manager",
        "--learn",
        str(count),
        "--flood",
        str(flood),
        "--rate",
        str(rate),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    port = int(await child.stdout.readline())
    settings = make_settings(
        tmp,
        ami={"host": "127.0.0.1", "port": port, "username": "router", "secret": "s3cret"},
    )
    app = await Application.start(settings)
    try:
        learned = app.learning
        assert learned is not None
        await eventually(lambda: learned.status.state is ManagerState.CONNECTED, "login")
        start = time.perf_counter()
        child.stdin.write(b"learn\n")
        await eventually(
            lambda: app.metrics.value("learned_total", outcome="created") >= count,
            "learning",
            600,
        )
        took = time.perf_counter() - start
        sent = int((await child.stdout.readline()).split()[1])
        print(
            f"learning over TCP: {count} queue calls ({sent} events) learned in "
            f"{took * 1000:.0f} ms ({count / took:,.0f} calls/s, {sent / took:,.0f} events/s)"
        )
        await app.store.set_route("default", "0899990988", "+84899990988", "104")
        idle, _ = await latency(app, calls)
        events = app.metrics.value("ami_events_total")
        child.stdin.write(b"flood\n")
        began = time.perf_counter()
        await eventually(lambda: app.metrics.value("ami_events_total") > events + 500, "flood")
        finished = asyncio.ensure_future(child.stdout.readline())
        busy: list[float] = []
        while not finished.done():  # calls for as long as the stream lasts
            more, _ = await latency(app, 20)
            busy.extend(more)
        flooded = int(finished.result().split()[1])
        lasted = time.perf_counter() - began
        dropped = app.metrics.value("learned_total", outcome="dropped")
        print(f"calls, Manager idle: {ms(idle)}")
        pace = f"at {rate:g} calls/s" if rate else "at full speed"
        print(
            f"calls, Manager streaming {flood} queue calls {pace} ({flooded} events in "
            f"{lasted:.1f} s, {flooded / lasted:,.0f}/s; {len(busy)} calls): {ms(busy)}; "
            f"learned facts dropped: {dropped:.0f}"
        )
    finally:
        await app.stop()
        child.stdin.close()
        await child.wait()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--learn", type=int, default=1000)
    parser.add_argument("--flood", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=0.0, help="flood pace, calls/s")
    parser.add_argument("--manager", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.manager:
        await manager_process(args.learn, args.flood, args.rate)
        return
    with tempfile.TemporaryDirectory() as tmp:
        await availability(Path(tmp), args.calls)
        interpreter(args.learn)
        (Path(tmp) / "learn").mkdir()
        await learning(Path(tmp) / "learn", args.learn, args.flood, args.calls // 4, args.rate)


if __name__ == "__main__":
    asyncio.run(main())
