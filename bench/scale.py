"""How the router's cost grows with the size of its store: 10k, 100k and 1M rows.

For each size (that many routes and that many customers, bench/seed.py):

* lookup latency: the routing read (`SQLiteStore.lookup_number_now`, what a call not in the
  hot layer costs) for random seeded numbers and for numbers that are not there, p50/p99/max;
* the same through the aiosqlite thread (`lookup_number` with loop-thread reads off), the
  alternative design, in the same run;
* start-up: from launching ``fastagi-router serve`` to the FastAGI port listening;
* RSS of the serving process after start-up and after a minute's worth of calls from random
  callers (the hot layer full);
* calls: sessions per server-core-second with random callers (bench/loadgen.py).

    python -m bench.scale                 # 10k, 100k, 1M (seeding 1M takes ~15 s)
    python -m bench.scale --sizes 10000   # one size
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import seed
from bench.run import ROOT, _cpu_seconds, _listening
from fastagi_router.store import SQLiteStore


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _lookups(path: Path, rows: int, samples: int) -> dict[str, float]:
    fast = await SQLiteStore.open(str(path))
    slow = await SQLiteStore.open(str(path), fast_reads=False)
    try:
        keys = [seed.number(random.randrange(rows))[1] for _ in range(samples)]
        missing = [f"+8491{random.randrange(10**7):07d}" for _ in range(samples)]
        timings: dict[str, list[float]] = {"hit": [], "miss": [], "thread": []}
        for name, batch in (("hit", keys), ("miss", missing)):
            for key in batch:
                start = time.perf_counter()
                match = fast.lookup_number_now("default", key)
                timings[name].append(time.perf_counter() - start)
                assert match is not None and (name == "miss" or match.route is not None)
        for key in keys[: samples // 4]:
            start = time.perf_counter()
            await slow.lookup_number("default", key)
            timings["thread"].append(time.perf_counter() - start)
    finally:
        await fast.close()
        await slow.close()
    result: dict[str, float] = {}
    for name, values in timings.items():
        result[f"{name}_p50_us"] = statistics.median(values) * 1e6
        result[f"{name}_p99_us"] = _pct(values, 0.99) * 1e6
        result[f"{name}_max_us"] = max(values) * 1e6
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _serve(path: Path, rows: int, duration: float) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"FASTAGI_ROUTER_LOG_LEVEL": "WARNING", "FASTAGI_ROUTER_HTTP_ENABLED": "0"}
    started = time.monotonic()
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "fastagi_router", "serve", "--db", str(path),
         "--agi", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() - started > 60:
                raise RuntimeError("serve did not start")
            time.sleep(0.005)
        startup = time.monotonic() - started
        rss_start = _rss_mb(proc.pid)
        cpu0 = _cpu_seconds(proc.pid)
        done = subprocess.run(
            ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "127.0.0.1", str(port),
             "--concurrency", "50", "--duration", str(duration), "--uvloop",
             "--random-callers", str(rows)],
            capture_output=True, check=True, cwd=ROOT,
        )  # fmt: skip
        cpu = _cpu_seconds(proc.pid) - cpu0
        load: dict[str, Any] = json.loads(done.stdout)
        return {
            "startup_s": startup,
            "rss_start_mb": rss_start,
            "rss_after_mb": _rss_mb(proc.pid),
            "sessions": load["sessions"],
            "errors": load["errors"],
            "sessions_per_core_s": load["sessions"] / cpu if cpu else float("nan"),
            "call_p99_ms": _pct(load["latencies_ms"], 0.99),
        }
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    rows_out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fastagi-scale-") as tmp:
        for rows in (int(x) for x in args.sizes.split(",")):
            path = Path(tmp) / f"store-{rows}.db"
            seconds = seed.fill(path, rows)
            result: dict[str, Any] = {
                "rows": rows,
                "seed_s": seconds,
                "file_mb": path.stat().st_size / 1e6,
            }
            result |= asyncio.run(_lookups(path, rows, args.samples))
            result |= _serve(path, rows, args.duration)
            rows_out.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(
        "| rows | file MB | lookup p50 / p99 / max us | miss p99 us | via thread p50 / p99 us "
        "| start-up s | RSS start / after MB | sessions/core-s | call p99 ms |"
    )
    print("| ---: | ---: | --- | ---: | --- | ---: | --- | ---: | ---: |")
    for r in rows_out:
        print(
            f"| {r['rows']:,} | {r['file_mb']:.0f} | {r['hit_p50_us']:.1f} / {r['hit_p99_us']:.1f}"
            f" / {r['hit_max_us']:.0f} | {r['miss_p99_us']:.1f} | {r['thread_p50_us']:.1f} / "
            f"{r['thread_p99_us']:.1f} | {r['startup_s']:.2f} | {r['rss_start_mb']:.0f} / "
            f"{r['rss_after_mb']:.0f} | {r['sessions_per_core_s']:.0f} | {r['call_p99_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
