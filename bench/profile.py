"""Where a recognised call's time goes: py-spy on a serve process under load.

Starts ``fastagi-router serve`` on CPU 0 with one sticky agent, drives it from CPU 1 with
the load generator (50 channels), samples it with py-spy (``pip install py-spy``) and
prints, for the router's own functions, their share of the event-loop thread's samples
(inclusive: the function and what it calls). What is left is uvloop and the kernel.

    python -m bench.profile [--seconds 8]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import seed
from bench.run import ROOT, _free_port, _listening


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("py-spy is needed: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="fastagi-profile-") as tmp:
        seed.prepare(Path(tmp), large=False)
        port = _free_port()
        env = os.environ | {
            "FASTAGI_ROUTER_LOG_LEVEL": "WARNING",
            "FASTAGI_ROUTER_HTTP_ENABLED": "0",
        }
        server = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "fastagi_router", "serve", "--db",
             f"{tmp}/small.db", "--agi", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not _listening(port):
                time.sleep(0.05)
            load = subprocess.Popen(
                ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "127.0.0.1",
                 str(port), "--concurrency", "50", "--duration", str(args.seconds + 3),
                 "--uvloop"], stdout=subprocess.DEVNULL, cwd=ROOT,
            )  # fmt: skip
            time.sleep(1.0)
            raw = Path(tmp) / "profile.raw"
            subprocess.run(
                [spy, "record", "-p", str(server.pid), "-d", str(int(args.seconds)), "-f", "raw",
                 "-o", str(raw), "-r", "1000"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            load.wait()
        finally:
            server.terminate()
            server.wait(10)
        inclusive: collections.Counter[str] = collections.Counter()
        loop_samples = 0
        for line in raw.read_text().splitlines():
            stack, count = line.rsplit(" ", 1)
            frames = stack.split(";")
            if not any(f.startswith("Runner.run") for f in frames):
                continue  # another thread (aiosqlite's, idle)
            loop_samples += int(count)
            for name in {f.split(" (")[0] for f in frames}:
                inclusive[name] += int(count)
    print(f"{loop_samples} samples of the event-loop thread; share, inclusive:")
    for name, count in inclusive.most_common():
        if name.startswith(("Runner.run", "main", "_run", "run_loop", "cmd_serve", "<module>")):
            continue
        print(f"{count / loop_samples:6.1%}  {name}")
        args.top -= 1
        if not args.top:
            break


if __name__ == "__main__":
    main()
