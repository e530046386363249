"""A bounded soak: minutes of steady calls, with the resources of the server sampled.

One ``serve`` process (REST API on) takes, for ``--minutes``, at the same time:

* recognised callers (sticky agent) from 20 channels;
* unknown callers typing a right code after a wrong one from 5 channels;
* a health-check client that connects and closes at once, 50 times a second;
* REST API reads of the routing table and /metrics every second.

Every ``--every`` seconds it samples the server's RSS and open file descriptors (from
/proc) and its asyncio tasks and sessions in progress (from /metrics), and prints them with
the calls answered so far. At the end: first and last samples side by side and the growth.

    python -m bench.soak [--minutes 3] [--every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import seed
from bench.run import ROOT, _free_port, _listening

TOKEN = "soak-token-0123456789abcdef"


def _gauge(text: str, name: str) -> float:
    found = re.search(rf"^fastagi_router_{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


def _rss_and_fds(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _http(port: int, path: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        text: str = answer.read().decode()
        return text


async def _health_checks(port: int, stop: asyncio.Event) -> int:
    done = 0
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            done += 1
        except OSError:
            pass
        await asyncio.sleep(0.02)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args()
    duration = args.minutes * 60
    tmp = Path(f"/tmp/fastagi-soak-{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    seed.prepare(tmp, large=False)
    agi, http = _free_port(), _free_port()
    env = os.environ | {"FASTAGI_ROUTER_LOG_LEVEL": "WARNING", "FASTAGI_ROUTER_API_TOKEN": TOKEN}
    log = (tmp / "serve.log").open("wb")
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "fastagi_router", "serve", "--db",
         str(tmp / "small.db"), "--agi", f"127.0.0.1:{agi}", "--http", f"127.0.0.1:{http}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    loads: list[subprocess.Popen[bytes]] = []
    try:
        while not (_listening(agi) and _listening(http)):
            time.sleep(0.05)
        time.sleep(0.5)
        common = ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "127.0.0.1",
                  str(agi), "--duration", str(duration), "--uvloop"]  # fmt: skip
        loads.append(
            subprocess.Popen([*common, "--concurrency", "20"], stdout=subprocess.PIPE, cwd=ROOT)
        )
        loads.append(subprocess.Popen(
            [*common, "--concurrency", "5", "--callerid", "anonymous", "--dtmf", "999",
             "--dtmf", "1234"], stdout=subprocess.PIPE, cwd=ROOT,
        ))  # fmt: skip
        stop = asyncio.Event()

        async def run() -> list[dict[str, Any]]:
            checks = asyncio.create_task(_health_checks(agi, stop))
            samples: list[dict[str, Any]] = []
            start = time.monotonic()
            next_sample = 0.0
            while time.monotonic() - start < duration:
                elapsed = time.monotonic() - start
                metrics = await asyncio.to_thread(_http, http, "/metrics")
                await asyncio.to_thread(_http, http, "/v1/smartrouting?limit=5")
                if elapsed >= next_sample:
                    rss, fds = _rss_and_fds(server.pid)
                    sample = {
                        "t_s": round(elapsed),
                        "rss_mb": round(rss, 1),
                        "fds": fds,
                        "tasks": _gauge(metrics, "asyncio_tasks"),
                        "sessions_active": _gauge(metrics, "sessions_active"),
                        "answered": sum(
                            float(v) for v in re.findall(
                                r'^fastagi_router_sessions_total\{outcome="answered"\} (\S+)$',
                                metrics, re.MULTILINE)
                        ),
                    }  # fmt: skip
                    samples.append(sample)
                    print(json.dumps(sample), flush=True)
                    next_sample += args.every
                await asyncio.sleep(1.0)
            stop.set()
            print(f"health checks: {await checks}", flush=True)
            return samples

        samples = asyncio.run(run())
        outputs = [json.loads(p.communicate()[0]) for p in loads]
        first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
        print()
        print("| sample | t s | RSS MB | fds | tasks | sessions in progress | answered |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, s in (("first (after warm-up)", first), ("last", last)):
            print(
                f"| {name} | {s['t_s']} | {s['rss_mb']} | {s['fds']} | {s['tasks']:.0f} "
                f"| {s['sessions_active']:.0f} | {s['answered']:.0f} |"
            )
        rss_max = max(s["rss_mb"] for s in samples)
        print(
            f"\nRSS max {rss_max} MB; calls: "
            + ", ".join(f"{o['sessions']} ok / {o['errors']} errors" for o in outputs)
        )
    finally:
        for proc in loads:
            if proc.poll() is None:
                proc.kill()
        server.terminate()
        server.wait(20)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
