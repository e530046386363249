"""Overload well past capacity, then recovery.

A router whose calls each take ~200 ms (callers known only to a customer API answering
after 200 ms) and whose session limit is ``agi.max_sessions`` (50 here) is driven in three
phases by the Asterisk load generator:

1. normal: 20 channels for 5 s;
2. overload: 400 channels for 10 s, eight times the limit;
3. recovery: 20 channels for 5 s.

For each phase it prints how many calls got which STATUS/REASON and their p50/p99
latency: past the limit, excess calls must get FALLBACK/overload at once while accepted
calls keep their latency, and the last phase must look like the first.

    python -m bench.overload [--limit 50] [--latency-ms 200]

The router runs on CPU 0; the load generator and the customer API on CPU 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.run import ROOT, _free_port, _listening


def _loadgen(port: int, concurrency: int, duration: float) -> dict[str, Any]:
    done = subprocess.run(
        ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "127.0.0.1", str(port),
         "--concurrency", str(concurrency), "--duration", str(duration), "--uvloop",
         "--callerid", "0911111111", "--random-callers", "90000000"],
        capture_output=True, check=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    api, agi = _free_port(), _free_port()
    env = os.environ | {
        "FASTAGI_ROUTER_LOG_LEVEL": "WARNING",
        "FASTAGI_ROUTER_HTTP_ENABLED": "0",
        "FASTAGI_ROUTER_AGI_MAX_SESSIONS": str(args.limit),
        "FASTAGI_ROUTER_UPSTREAM_URL": f"http://127.0.0.1:{api}",
        "FASTAGI_ROUTER_UPSTREAM_TOKEN": "bench-token",
        "FASTAGI_ROUTER_UPSTREAM_ACCOUNT": "CL0000",
        "FASTAGI_ROUTER_UPSTREAM_MAX_CONNECTIONS": str(args.limit * 2),
    }
    helper = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "bench.upstream_api", str(api), "--latency-ms",
         str(args.latency_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with open(os.devnull, "wb") as sink:
        server = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "fastagi_router", "serve", "--db",
             f"/tmp/fastagi-overload-{os.getpid()}.db", "--agi", f"127.0.0.1:{agi}"],
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        while not (_listening(api) and _listening(agi)):
            time.sleep(0.05)
        print(
            f"limit agi.max_sessions={args.limit}; each accepted call waits "
            f"{args.latency_ms:g} ms on the customer API\n"
        )
        print("| phase | channels | calls/s | STATUS/REASON: calls, p50 ms, p99 ms | errors |")
        print("| --- | ---: | ---: | --- | ---: |")
        for phase, concurrency, duration in (
            ("normal", 20, 5.0),
            ("overload", 400, 10.0),
            ("recovery", 20, 5.0),
        ):
            result = _loadgen(agi, concurrency, duration)
            statuses = "; ".join(
                f"{name} {count}, {p50:.1f}, {p99:.1f}"
                for name, (count, p50, p99) in result["by_status"].items()
            )
            print(
                f"| {phase} | {concurrency} | {result['sessions'] / result['wall_s']:.0f} "
                f"| {statuses} | {result['errors']} |",
                flush=True,
            )
    finally:
        for proc in (server, helper):
            proc.terminate()
            proc.wait(10)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/fastagi-overload-{os.getpid()}.db{suffix}")


if __name__ == "__main__":
    main()
