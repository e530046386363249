"""The benchmark: the router against baseline FastAGI servers, in the same run.

    python -m bench.run                    # every contender, 3 repeats (several minutes)
    python -m bench.run --quick            # 1 repeat, short runs (a smoke test of the bench)
    python -m bench.run --only router-agent,panoramisk-uvloop --repeats 5
    python -m bench.run --only router-agent,minimal-uvloop --against HEAD~1

``--against REV`` adds ``router-agent@REV`` (and ``router-agent-logged@REV`` when
``router-agent-logged`` is chosen): the router package as it is at git revision REV
(extracted with ``git archive``, first on the module path), serving the same store in the
same run, so that what a change costs or saves is a ratio measured side by side. The store
is seeded by this tree: REV must read its schema.

Each server runs pinned to CPU 0 and the load generator to CPU 1 (when the machine has two),
alternating contenders in each repeat so that drift on a noisy machine hits them alike.
For each contender and repeat:

* throughput: 50 concurrent channels for ``--duration`` s; sessions per server-core-second
  = sessions completed / CPU seconds the server process used (from /proc), which does not
  depend on how busy the rest of the machine was;
* latency at concurrency 1 (p50) and at concurrency 200 (p99, max), with the kernel's
  ListenOverflows counter read before and after (accept queue overflows);
* round trips per call, errors, and whether the load generator itself was saturated.

Medians over the repeats and ratios against panoramisk+uvloop and the minimal server are
printed and written to ``bench/results/<timestamp>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import seed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Contender:
    """A server to measure and how the load generator talks to it."""

    name: str
    command: list[str]
    script: str = "route"
    callerid: str = "0899990988"
    dtmf: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    extra_loadgen: list[str] = field(default_factory=list)
    #: CPUs the server may use ("0"; "0,1" for two workers, sharing CPU 1 with the load).
    server_cpus: str = "0"
    #: A helper process started beside the server (the customer API), "{api}" its port.
    helper: list[str] = field(default_factory=list)


def _cpus() -> tuple[str, str]:
    count = os.cpu_count() or 1
    return ("0", "1") if count >= 2 else ("0", "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid`` and every live descendant (a supervisor's workers)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
    return total


def _listening(port: int) -> bool:
    """True once something listens on ``port``, read from /proc: a probe connection would
    itself be a client closing before the header block, which wedges some baselines."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(wanted) and fields[3] == "0A":
                    return True
    return False


def _listen_overflows() -> int:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            names = header.split()[1:]
            return int(values.split()[1:][names.index("ListenOverflows")])
    return 0


@contextlib.contextmanager
def _server(contender: Contender, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    server_cpu = contender.server_cpus if (os.cpu_count() or 1) >= 2 else "0"
    api = _free_port()
    command = [a.replace("{port}", str(port)).replace("{api}", str(api)) for a in contender.command]
    env = os.environ | {k: v.replace("{api}", str(api)) for k, v in contender.env.items()}
    helper = None
    with log.open("ab") as out:
        if contender.helper:
            helper_command = [a.replace("{api}", str(api)) for a in contender.helper]
            helper = subprocess.Popen(
                ["taskset", "-c", _cpus()[1], *helper_command],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            while not _listening(api):
                time.sleep(0.05)
        proc = subprocess.Popen(
            ["taskset", "-c", server_cpu, *command], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _listening(port):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{contender.name} exited: see {log}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{contender.name} did not start: see {log}")
        yield proc
    finally:
        for running in (proc, helper):
            if running is None:
                continue
            running.terminate()
            try:
                running.wait(10)
            except subprocess.TimeoutExpired:
                running.kill()
                running.wait()


def _loadgen(
    contender: Contender,
    port: int,
    concurrency: int,
    duration: float,
    max_sessions: int | None = None,
) -> dict[str, Any]:
    _, load_cpu = _cpus()
    command = [
        "taskset",
        "-c",
        load_cpu,
        sys.executable,
        "-m",
        "bench.loadgen",
        "127.0.0.1",
        str(port),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--script",
        contender.script,
        "--callerid",
        contender.callerid,
        "--uvloop",
        *contender.extra_loadgen,
    ]
    for digits in contender.dtmf:
        command += ["--dtmf", digits]
    if max_sessions is not None:
        command += ["--max-sessions", str(max_sessions)]
    done = subprocess.run(
        command, capture_output=True, check=True, cwd=ROOT, timeout=duration + 120
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(contender: Contender, duration: float, log: Path) -> dict[str, Any]:
    """Run the three measurements against one fresh server process."""
    port = _free_port()
    with _server(contender, port, log) as proc:
        _loadgen(contender, port, 20, min(1.0, duration))  # warm up: imports, caches, JIT-less
        cpu0 = _cpu_seconds(proc.pid)
        load = _loadgen(contender, port, 50, duration)
        cpu = _cpu_seconds(proc.pid) - cpu0
        serial = _loadgen(contender, port, 1, duration / 2)
        overflows0 = _listen_overflows()
        burst = _loadgen(contender, port, 200, duration)
        overflows = _listen_overflows() - overflows0
    return {
        "sessions_per_s": load["sessions"] / load["wall_s"],
        "server_cpu_s": cpu,
        "sessions_per_core_s": load["sessions"] / cpu if cpu else float("nan"),
        "round_trips": load["commands_per_session"],
        "errors": load["errors"] + serial["errors"] + burst["errors"],
        "loadgen_saturated": load["loadgen_saturated"] or burst["loadgen_saturated"],
        "loadgen_cpu": load["loadgen_cpu_s"] / load["wall_s"],
        "p50_c1_ms": _percentile(serial["latencies_ms"], 0.50),
        "p95_c200_ms": _percentile(burst["latencies_ms"], 0.95),
        "p99_c200_ms": _percentile(burst["latencies_ms"], 0.99),
        "max_c200_ms": max(burst["latencies_ms"], default=float("nan")),
        "listen_overflows": overflows,
    }


def contenders(db_dir: Path) -> list[Contender]:
    """Every server the benchmark knows, baselines first."""
    py = sys.executable
    router = [py, "-m", "fastagi_router", "serve", "--agi", "127.0.0.1:{port}"]
    quiet = {"FASTAGI_ROUTER_LOG_LEVEL": "WARNING", "FASTAGI_ROUTER_HTTP_ENABLED": "0"}
    upstream = {
        "FASTAGI_ROUTER_UPSTREAM_URL": "http://127.0.0.1:{api}",
        "FASTAGI_ROUTER_UPSTREAM_TOKEN": "bench-token",
        "FASTAGI_ROUTER_UPSTREAM_ACCOUNT": "CL0000",
    }
    small = str(db_dir / "small.db")
    return [
        Contender(
            "panoramisk-uvloop",
            [py, "-m", "bench.baselines", "panoramisk", "{port}", "--uvloop"],
            script="bench",
        ),
        Contender(
            "panoramisk-asyncio",
            [py, "-m", "bench.baselines", "panoramisk", "{port}"],
            script="bench",
        ),
        Contender(
            "minimal-uvloop",
            [py, "-m", "bench.baselines", "minimal", "{port}", "--uvloop"],
            script="bench",
        ),
        Contender("threads", [py, "-m", "bench.baselines", "threads", "{port}"], script="bench"),
        # No work at all, the router's listen backlog: what the load generator can show.
        Contender(
            "null-uvloop",
            [py, "-m", "bench.baselines", "null", "{port}", "--uvloop", "--backlog", "4096"],
        ),
        Contender("router-agent", [*router, "--db", small], env=quiet),
        # The defaults as shipped: the per-call INFO line written to the log (a file here).
        Contender(
            "router-agent-logged",
            [*router, "--db", small],
            env={"FASTAGI_ROUTER_HTTP_ENABLED": "0"},
        ),
        Contender("router-customer", [*router, "--db", small], callerid="0899990977", env=quiet),
        Contender(
            "router-code", [*router, "--db", small], callerid="anonymous", dtmf=["1234"], env=quiet
        ),
        Contender(
            "router-agent-w2",
            [*router, "--db", small, "--workers", "2"],
            env=quiet,
            server_cpus="0,1",
        ),
        # Where the server, not the load generator, is the bottleneck: what a second
        # worker adds on this machine.
        Contender(
            "router-code-w2",
            [*router, "--db", small, "--workers", "2"],
            callerid="anonymous",
            dtmf=["1234"],
            env=quiet,
            server_cpus="0,1",
        ),
        Contender(
            "router-upstream-warm",
            [*router, "--db", small],
            env=quiet | upstream,
            helper=[py, "-m", "bench.upstream_api", "{api}", "--latency-ms", "50"],
            extra_loadgen=["--random-callers", "50"],
            callerid="0911111111",
        ),
        Contender(
            "router-upstream-cold",
            [*router, "--db", small],
            env=quiet | upstream,
            helper=[py, "-m", "bench.upstream_api", "{api}", "--latency-ms", "50"],
            extra_loadgen=["--random-callers", "90000000"],
            callerid="0911111111",
        ),
        Contender(
            "router-1m",
            [*router, "--db", str(db_dir / "large.db")],
            env=quiet,
            extra_loadgen=["--random-callers", str(seed.LARGE)],
        ),
    ]


#: The contenders ``--against`` runs at another revision (the second only when chosen).
AT_REVISION = ("router-agent", "router-agent-logged")


def at_revision(revision: str, db_dir: Path, name: str = "router-agent") -> Contender:
    """Contender ``name`` with the ``fastagi_router`` package as it is at git ``revision``."""
    tree = db_dir / f"rev-{len(list(db_dir.glob('rev-*')))}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "fastagi_router"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    base = next(c for c in contenders(db_dir) if c.name == name)
    python, *rest = base.command
    return dataclasses.replace(
        base,
        name=f"{name}@{revision}",
        # -P: the working directory must not come first on the module path.
        command=[python, "-P", *rest],
        env=base.env | {"PYTHONPATH": str(tree)},
    )


def _machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "somaxconn": Path("/proc/sys/net/core/somaxconn").read_text().strip(),
    }


def _markdown(
    summary: dict[str, dict[str, float]],
    runs: dict[str, list[dict[str, Any]]],
    machine: dict[str, str],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"# FastAGI benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"kernel {machine['kernel']}, somaxconn {machine['somaxconn']}. Server on CPU 0, "
        f"load generator on CPU 1 (the customer API too, where there is one; the -w2 contenders' "
        f"two workers on CPUs 0 and 1); {args.repeats} repeat(s) of {args.duration:g} s, medians."
        " Sessions per server-core-second count the CPU time of the server and its workers.",
        "",
        "| server | sessions/server-core-s | vs panoramisk+uvloop | vs minimal | sessions/s "
        "| round trips | p50 c=1 ms | p95 c=200 ms | p99 c=200 ms | max c=200 ms | overflows "
        "| errors | loadgen CPU |",
        "| --- |" + " ---: |" * 12,
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['sessions_per_core_s']:.0f} | {_ratio(s['vs_panoramisk'])} "
            f"| {_ratio(s['vs_minimal'])} | {s['sessions_per_s']:.0f} | {s['round_trips']:.1f} "
            f"| {s['p50_c1_ms']:.2f} | {s['p95_c200_ms']:.1f} | {s['p99_c200_ms']:.1f} "
            f"| {s['max_c200_ms']:.1f} | {s['listen_overflows']:.0f} | {s['errors']:.0f} "
            f"| {s['loadgen_cpu']:.0%} |"
        )
    if args.repeats > 1:
        # The medians hide how far one repeat is from the next on a noisy machine.
        lines += ["", "Each repeat, in order (sessions/server-core-s; p99 c=200 ms):", ""]
        for name, results in runs.items():
            rates = " / ".join(f"{r['sessions_per_core_s']:.0f}" for r in results)
            tails = " / ".join(f"{r['p99_c200_ms']:.1f}" for r in results)
            lines.append(f"- {name}: {rates}; {tails}")
    for revision in args.against:
        for name in AT_REVISION:
            old, new = summary.get(f"{name}@{revision}"), summary.get(name)
            if old and new:
                lines += [
                    "",
                    f"{name} / {name}@{revision}: "
                    f"{_ratio(new['sessions_per_core_s'] / old['sessions_per_core_s'])} "
                    "sessions per server-core-second.",
                ]
    return "\n".join(lines) + "\n"


def _ratio(value: float) -> str:
    """``1.23x``, or ``-`` when the contender it compares with was not in the run."""
    return "-" if math.isnan(value) else f"{value:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="1 repeat of 1 s")
    parser.add_argument("--only", default="", help="comma-separated contender names")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--against", action="append", default=[], metavar="REV",
        help="also run router-agent (and router-agent-logged, when chosen) at this git "
        "revision (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.duration = 1, 1.0
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin server and load generator")
    with tempfile.TemporaryDirectory(prefix="fastagi-bench-") as tmp:
        db_dir = Path(tmp)
        chosen = [c for c in contenders(db_dir) if not args.only or c.name in args.only.split(",")]
        names = {c.name for c in chosen} | {AT_REVISION[0]}
        chosen += [
            at_revision(revision, db_dir, name)
            for revision in args.against
            for name in AT_REVISION
            if name in names
        ]
        seed.prepare(db_dir, large=any(c.name == "router-1m" for c in chosen))
        log = db_dir / "servers.log"
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in chosen}
        for repeat in range(args.repeats):
            for contender in chosen:
                result = measure(contender, args.duration, log)
                runs[contender.name].append(result)
                print(
                    f"[{repeat + 1}/{args.repeats}] {contender.name}: "
                    f"{result['sessions_per_core_s']:.0f} sessions/core-s, "
                    f"p50 {result['p50_c1_ms']:.2f} ms, p99@200 {result['p99_c200_ms']:.1f} ms, "
                    f"overflows {result['listen_overflows']}, errors {result['errors']}",
                    flush=True,
                )
    summary: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        summary[name] = {k: statistics.median(float(r[k]) for r in results) for k in results[0]}
    base = summary.get("panoramisk-uvloop", {}).get("sessions_per_core_s", float("nan"))
    minimal = summary.get("minimal-uvloop", {}).get("sessions_per_core_s", float("nan"))
    for s in summary.values():
        s["vs_panoramisk"] = s["sessions_per_core_s"] / base
        s["vs_minimal"] = s["sessions_per_core_s"] / minimal
    machine = _machine()
    report = _markdown(summary, runs, machine, args)
    print()
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (args.out / f"{stamp}.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "repeats": args.repeats,
                "duration_s": args.duration,
                "summary": summary,
                "runs": runs,
            },
            indent=2,
        )
    )
    (args.out / f"{stamp}.md").write_text(report)
    print(f"written: {args.out / stamp}.json and .md")


if __name__ == "__main__":
    main()
