"""Where a server's CPU goes, by binary: the kernel, the interpreter, uvloop, libc, SQLite.

Starts each named contender of `bench.run` (server on CPU 0, load generator on CPU 1, 50
channels for ``--seconds``), samples the server with Linux ``perf record -e cpu-clock``
(a software clock: it works where hardware counters do not), and prints each binary's
share of the samples and what that is per session in microseconds. Needs ``perf``
(Debian: linux-perf) and permission to trace the server (root, or
``kernel.perf_event_paranoid`` <= 1).

    python -m bench.cpu_split router-agent minimal-uvloop [--seconds 5]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import run, seed

_ROW = re.compile(r"^\s*([\d.]+)%\s+(\S+)")


def split(report: str) -> list[tuple[str, float]]:
    """(binary, share of samples in %) from ``perf report --sort dso --stdio -q``."""
    rows = []
    for line in report.splitlines():
        found = _ROW.match(line)
        if found:
            rows.append((found.group(2), float(found.group(1))))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("contenders", nargs="+", help="names, as in bench.run --only")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("perf is not installed (Debian: apt install linux-perf)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fastagi-cpu-split-") as directory:
        tmp = Path(directory)
        seed.prepare(tmp, large=False)
        known = {contender.name: contender for contender in run.contenders(tmp)}
        for name in args.contenders:
            contender = known[name]
            port = run._free_port()
            data = tmp / f"{name}.perf"
            with run._server(contender, port, tmp / "server.log") as proc:
                run._loadgen(contender, port, 20, 1.0)  # warm up
                cpu0 = run._cpu_seconds(proc.pid)
                recorder = subprocess.Popen(
                    ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-p", str(proc.pid),
                     "-o", str(data), "--", "sleep", str(args.seconds)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                load = run._loadgen(contender, port, 50, args.seconds)
                cpu = run._cpu_seconds(proc.pid) - cpu0
                recorder.wait()
            report = subprocess.run(
                ["perf", "report", "-i", str(data), "--sort", "dso", "--stdio", "-q"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            per_session_us = cpu / load["sessions"] * 1e6 if load["sessions"] else float("nan")
            print(f"{name}: {load['sessions']} sessions, {per_session_us:.1f} us CPU per session")
            for binary, share in split(report.stdout):
                if share >= 0.5:
                    print(f"  {share:5.1f}%  {share / 100 * per_session_us:6.1f} us  {binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
