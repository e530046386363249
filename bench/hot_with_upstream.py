"""Local callers beside new upstream callers: does the hot layer keep answering from memory?

The upstream cache lives in the store's file, so each transaction that saves upstream
answers changes the file's WAL-index header and empties the hot layer in front of the
local tables (store/hot.py). This drives one router with two load generators at once for
``--seconds``: 20 channels of one local sticky caller and 20 channels of callers the
upstream API is asked about for the first time (a fake API on 127.0.0.1 answering after
``--latency-ms``), after 4 s of the local caller alone. It prints, for each phase, the
sessions of each generator and the local caller's hot-layer misses (from ``/metrics``:
every new upstream caller misses once and hits once, on the task path's second look).

    python -m bench.hot_with_upstream [--seconds 4] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import seed
from bench.run import ROOT, _free_port, _listening

HOT = 'fastagi_router_cache_lookups_total{cache="hot",result="%s"}'


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fastagi_router_cache_lookups_total")
    }


def _load(port: int, seconds: float, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "127.0.0.1", str(port),
         "--concurrency", "20", "--duration", str(seconds), "--uvloop", *args],
        stdout=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="fastagi-hot-upstream-") as tmp:
        seed.prepare(Path(tmp), large=False)
        api, agi, http = _free_port(), _free_port(), _free_port()
        helper = subprocess.Popen(
            ["taskset", "-c", "1", py, "-m", "bench.upstream_api", str(api),
             "--latency-ms", str(args.latency_ms)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        env = os.environ | {
            "FASTAGI_ROUTER_UPSTREAM_URL": f"http://127.0.0.1:{api}",
            "FASTAGI_ROUTER_UPSTREAM_TOKEN": "bench-token",
            "FASTAGI_ROUTER_UPSTREAM_ACCOUNT": "CL0000",
            "FASTAGI_ROUTER_LOG_LEVEL": "WARNING",
            "FASTAGI_ROUTER_HTTP_LISTEN": f"127.0.0.1:{http}",
        }
        server = subprocess.Popen(
            ["taskset", "-c", "0", py, "-m", "fastagi_router", "serve", "--db",
             f"{tmp}/small.db", "--agi", f"127.0.0.1:{agi}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not (_listening(agi) and _listening(http)):
                time.sleep(0.05)
            for phase, cold in (("local caller alone", False), ("with new upstream callers", True)):
                before = _metrics(http)
                loads = [_load(agi, args.seconds, "--callerid", "0899990988")]
                if cold:
                    loads.append(
                        _load(agi, args.seconds, "--callerid", "0911111111",
                              "--random-callers", "90000000")
                    )  # fmt: skip
                sessions = [
                    json.loads(p.communicate()[0].splitlines()[-1])["sessions"] for p in loads
                ]
                after = _metrics(http)
                misses = after.get(HOT % "miss", 0) - before.get(HOT % "miss", 0)
                local_misses = max(misses - sum(sessions[1:]), 0)
                print(
                    f"{phase}: local caller {sessions[0]} sessions, "
                    f"{local_misses:.0f} hot-layer misses ({local_misses / sessions[0]:.1%})"
                    + (f"; new upstream callers {sessions[1]} sessions" if cold else "")
                )
        finally:
            server.terminate()
            server.wait(10)
            helper.terminate()
            helper.wait(10)


if __name__ == "__main__":
    main()
