"""The load generator: many Asterisk channels at once, speaking FastAGI as Asterisk does.

Each session connects, sends the header block Asterisk's ``setup_env()`` writes (built by
`fastagi_router.simulator.header_block`), answers every command with the reply res_agi
gives (table below), and ends when the server closes. It is lean on purpose -- a table of
replies instead of the full simulator -- so one core can drive a server on another core;
it reports its own CPU use so a saturated generator is visible in the results.

Run as a process (the benchmark does): ``python -m bench.loadgen HOST PORT MODE ...``;
prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import socket
import sys
import time

from fastagi_router.simulator import CallSpec, header_block

_GET_DATA_TIMEOUT = b"200 result= (timeout)\n"
_STATUS = re.compile(rb"SMARTROUTING_STATUS=([A-Z]*)")
_REASON = re.compile(rb"SMARTROUTING_REASON=([a-z_]*)")


class _Session(asyncio.Protocol):
    """One simulated channel: answers commands from a reply table until the server closes."""

    __slots__ = (
        "_buffer",
        "_done",
        "_header",
        "_keys",
        "_replies",
        "_start",
        "commands",
        "errors",
        "status",
        "transport",
    )

    def __init__(
        self,
        done: asyncio.Future[tuple[float, int, bool, str]],
        header: bytes,
        replies: dict[bytes, bytes],
        keys: list[bytes],
    ) -> None:
        self._done = done
        self._buffer = b""
        self._replies = replies
        self._keys = list(keys)
        self._header = header
        self.commands = 0
        self.errors = False
        self.status = ""
        self._start = time.perf_counter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self._header)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line = buffer[:end]
            buffer = buffer[end + 1 :]
            self.commands += 1
            assert self.transport is not None
            self.transport.write(self._reply(line))
        self._buffer = buffer

    def _reply(self, line: bytes) -> bytes:
        if line.startswith(b"GET DATA"):
            return self._keys.pop(0) if self._keys else _GET_DATA_TIMEOUT
        if line.startswith(b"EXEC MSet"):
            status = _STATUS.search(line)
            reason = _REASON.search(line)
            if status is None:
                self.errors = True
            else:
                why = reason.group(1).decode() if reason else ""
                self.status = f"{status.group(1).decode()}/{why}"
        for prefix, reply in self._replies.items():
            if line.startswith(prefix):
                return reply
        self.errors = True
        return b"510 Invalid or unknown command\n"

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            ok = exc is None and not self.errors and self.commands > 0
            elapsed = time.perf_counter() - self._start
            self._done.set_result((elapsed, self.commands, ok, self.status))


def _replies(callerid: str) -> dict[bytes, bytes]:
    return {
        b"GET VARIABLE": f"200 result=1 ({callerid})\n".encode(),
        b"GET FULL VARIABLE": b"200 result=1 (NOT_INUSE)\n",
        b"SET VARIABLE": b"200 result=1\n",
        b"EXEC": b"200 result=0\n",
        b"ANSWER": b"200 result=0\n",
        b"STREAM FILE": b"200 result=0 endpos=0\n",
        b"VERBOSE": b"200 result=1\n",
        b"NOOP": b"200 result=0\n",
    }


async def _one(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    header: bytes,
    replies: dict[bytes, bytes],
    keys: list[bytes],
) -> tuple[float, int, bool, str]:
    done: asyncio.Future[tuple[float, int, bool, str]] = loop.create_future()
    try:
        await loop.create_connection(lambda: _Session(done, header, replies, keys), host, port)
    except OSError:
        return (0.0, 0, False, "")
    return await done


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Drive the server for ``args.duration`` seconds with ``args.concurrency`` channels."""
    loop = asyncio.get_running_loop()
    spec = CallSpec(callerid=args.callerid, script=args.script, host=args.host, port=args.port)
    header = header_block(spec)
    replies = _replies(args.callerid)
    headers = [header]
    if args.random_callers:
        # Many distinct callers (the seeded 09xxxxxxxx numbers), drawn at random.
        text = header.decode()
        old = f"agi_callerid: {args.callerid}\n"
        sample = random.sample(range(args.random_callers), min(args.random_callers, 20000))
        headers = [text.replace(old, f"agi_callerid: 09{i:08d}\n").encode() for i in sample]
    keys = [f"200 result={d}\n".encode() for d in args.dtmf]
    latencies: list[float] = []
    by_status: dict[str, list[float]] = {}
    commands = errors = 0
    stop_at = time.perf_counter() + args.duration

    async def worker() -> None:
        nonlocal commands, errors
        while time.perf_counter() < stop_at and len(latencies) + errors < args.max_sessions:
            chosen = headers[(len(latencies) + errors) % len(headers)]
            elapsed, count, ok, status = await _one(
                loop, args.host, args.port, chosen, replies, keys
            )
            if ok:
                latencies.append(elapsed)
                by_status.setdefault(status, []).append(elapsed)
                commands += count
            else:
                errors += 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    return {
        "sessions": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "loadgen_cpu_s": cpu,
        "loadgen_saturated": cpu / wall > 0.9 if wall else False,
        "commands_per_session": commands / len(latencies) if latencies else 0.0,
        "latencies_ms": [round(x * 1000, 4) for x in latencies],
        # STATUS/REASON -> sessions, p50 and p99 in ms
        "by_status": {
            name: [len(values), _ms(values, 0.5), _ms(values, 0.99)]
            for name, values in sorted(by_status.items())
        },
    }


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--max-sessions", type=int, default=10**9)
    parser.add_argument("--script", default="route")
    parser.add_argument("--callerid", default="0899990988")
    parser.add_argument("--dtmf", action="append", default=[])
    parser.add_argument(
        "--random-callers",
        type=int,
        default=0,
        help="draw callers among the first N seeded numbers (09xxxxxxxx)",
    )
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.host != "127.0.0.1":
        sys.exit("the load generator only talks to 127.0.0.1")
    if args.uvloop:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(run(args))
    result["pid"] = os.getpid()
    result["host"] = socket.gethostname()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
