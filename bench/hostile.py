"""Server CPU and memory under thousands of hostile FastAGI connections.

    python bench/hostile.py [--rounds 4] [--per-kind 500] [--concurrency 50]

Starts ``fastagi-router serve`` as its own process (a store in a temporary directory, the
header timeout at 300 ms and the prompt timeout at 500 ms so that slow clients end
quickly), then runs rounds of hostile connections of every kind below, ``--per-kind`` of
each, ``--concurrency`` at a time, while a well-behaved caller keeps calling. After each
round it reads the server's CPU time, resident memory and open descriptors from /proc, and
its sessions gauge from /metrics; after the last, the CPU used over 2 s of quiet (a server
that spins on a dead connection shows there).

Kinds: ``health`` (connect, close), ``reset`` (connect, TCP reset), ``garbage`` (4 KiB of
random bytes), ``endless`` (64 KiB with no line end), ``megabyte`` (1 MiB of header lines;
a tenth as many), ``utf8`` (a header block with invalid UTF-8, answered in full),
``slowloris`` (a byte every 100 ms until closed; a tenth as many), ``hangup`` (an unknown
caller who closes at the prompt), ``unsolicited`` (a reply nobody asked for).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastagi_router.simulator import Asterisk, CallSpec, header_block

TICK = os.sysconf("SC_CLK_TCK")
GOOD = "0899990988"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def usage(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user + system), resident kB, open descriptors of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss, len(os.listdir(f"/proc/{pid}/fd"))


async def read_all(reader: asyncio.StreamReader, limit: float = 10.0) -> None:
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def send_and_read(port: int, data: bytes, chunk: int = 65536) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for offset in range(0, len(data), chunk):
            writer.write(data[offset : offset + chunk])
            await writer.drain()
        await read_all(reader)
    except ConnectionError:
        pass
    finally:
        await close(writer)


async def health(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write_eof()
    await close(writer)


async def reset(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def garbage(port: int) -> None:
    await send_and_read(port, random.randbytes(4096))


async def endless(port: int) -> None:
    await send_and_read(port, b"agi_network: " + b"x" * 65536)


async def megabyte(port: int) -> None:
    await send_and_read(port, b"agi_x: 0123456789\n" * 58_000)


async def utf8(port: int) -> None:
    block = header_block(CallSpec(callerid=GOOD)).replace(b"Test", b"\xff\xfe\xed\xa0\x80")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(block)
        if await reader.readline():
            writer.write(b"200 result=0\n")
        await read_all(reader)
    finally:
        await close(writer)


async def slowloris(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for byte in header_block(CallSpec()):
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    if not await reader.read(1):
                        return
    except ConnectionError:
        pass
    finally:
        await close(writer)


async def hangup(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(header_block(CallSpec(callerid="anonymous")))
        if await reader.readline() == b"ANSWER\n":
            writer.write(b"200 result=0\n")
            await reader.readline()  # GET DATA: hang up instead of playing it
    finally:
        await close(writer)


async def unsolicited(port: int) -> None:
    await send_and_read(port, header_block(CallSpec(callerid="anonymous")) + b"200 result=0\n")


KINDS: list[tuple[str, Callable[[int], Awaitable[None]], float]] = [
    ("health", health, 1),
    ("reset", reset, 1),
    ("garbage", garbage, 1),
    ("endless", endless, 1),
    ("megabyte", megabyte, 0.1),
    ("utf8", utf8, 1),
    ("slowloris", slowloris, 0.1),
    ("hangup", hangup, 1),
    ("unsolicited", unsolicited, 1),
]


async def good_calls(port: int, stop: asyncio.Event, latencies: list[float]) -> None:
    asterisk = Asterisk(port=port)
    while not stop.is_set():
        result = await asterisk.call(CallSpec(callerid=GOOD, port=port), timeout=10)
        assert result.status == "AGENT" and not result.reset, result.transcript
        latencies.append(result.elapsed)
        await asyncio.sleep(0.005)


async def sessions_active(http_port: int) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{http_port}/metrics") as response,
    ):
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("fastagi_router_sessions_active "))
    return float(line.split()[1])


async def one_round(port: int, per_kind: int, concurrency: int) -> tuple[int, float, list[float]]:
    gate = asyncio.Semaphore(concurrency)

    async def gated(kind: Callable[[int], Awaitable[None]]) -> None:
        async with gate:
            await kind(port)

    jobs = [gated(kind) for _, kind, share in KINDS for _ in range(max(1, int(per_kind * share)))]
    random.shuffle(jobs)
    stop, latencies = asyncio.Event(), []
    caller = asyncio.create_task(good_calls(port, stop, latencies))
    start = time.monotonic()
    await asyncio.gather(*jobs)
    elapsed = time.monotonic() - start
    stop.set()
    await caller
    return len(jobs), elapsed, latencies


async def run(args: argparse.Namespace, pid: int, port: int, http_port: int) -> None:
    await one_round(port, max(args.per_kind // 10, 1), args.concurrency)  # warm up
    cpu0, rss0, fds0 = usage(pid)
    print(f"after warm-up: RSS {rss0 / 1024:.1f} MiB, {fds0} descriptors")
    print(
        f"{'round':>5} {'conns':>6} {'wall s':>7} {'cpu s':>6} {'cpu us/conn':>11} "
        f"{'RSS MiB':>8} {'fds':>4} {'active':>6} {'good calls':>10} {'good p50/p99 ms':>16}"
    )
    cpu_before = cpu0
    for n in range(1, args.rounds + 1):
        conns, wall, latencies = await one_round(port, args.per_kind, args.concurrency)
        await asyncio.sleep(1.0)  # let the last closes land
        cpu, rss, fds = usage(pid)
        active = await sessions_active(http_port)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000
        print(
            f"{n:>5} {conns:>6} {wall:>7.1f} {cpu - cpu_before:>6.2f} "
            f"{(cpu - cpu_before) / conns * 1e6:>11.0f} {rss / 1024:>8.1f} {fds:>4} "
            f"{active:>6.0f} {len(latencies):>10} {p50:>7.2f}/{p99:<8.2f}"
        )
        cpu_before = cpu
    idle_start = usage(pid)[0]
    await asyncio.sleep(2.0)
    cpu, rss, fds = usage(pid)
    print(f"quiet 2 s after the last round: {(cpu - idle_start) * 1000:.0f} ms of CPU")
    print(f"RSS {rss0 / 1024:.1f} -> {rss / 1024:.1f} MiB, descriptors {fds0} -> {fds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-kind", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "hostile.db")
        command = [sys.executable, "-m", "fastagi_router"]
        subprocess.run(
            [*command, "routes", "set", GOOD, "104", "--db", db], check=True, capture_output=True
        )
        env = {
            **os.environ,
            "FASTAGI_ROUTER_AGI_HEADER_TIMEOUT_MS": "300",
            "FASTAGI_ROUTER_AGI_PROMPT_TIMEOUT_MS": "500",
            "FASTAGI_ROUTER_LOG_LEVEL": "WARNING",
        }
        listen = ["--agi", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}"]
        log = Path(tmp) / "serve.log"
        with log.open("wb") as err:
            server = subprocess.Popen(
                [*command, "serve", "--db", db, *listen],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            address = ("127.0.0.1", port)
            try:
                for _ in range(100):
                    with contextlib.suppress(OSError), socket.create_connection(address):
                        break
                    time.sleep(0.05)
                asyncio.run(run(args, server.pid, port, http_port))
            finally:
                server.terminate()
                server.wait(timeout=30)
        lines = log.read_text(errors="replace").splitlines()
        errors = [x for x in lines if " ERROR " in x or "Traceback" in x]
        print(f"server log: {len(lines)} lines, {len(errors)} errors or tracebacks")
        for line in errors[:5]:
            print("  " + line[:200])


if __name__ == "__main__":
    main()
