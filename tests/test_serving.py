"""`serve` as a real process: workers, SIGTERM, SIGHUP."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastagi_router.cli import main
from fastagi_router.serving import settle_heap
from fastagi_router.simulator import CallSpec, Faults, Keypress, place_call

TOKEN = "serving-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    def __init__(self, tmp_path: Path, *args: str, config: str = "") -> None:
        self.agi = _free_port()
        self.http = _free_port()
        self.db = str(tmp_path / "served.db")
        self.log_path = tmp_path / "serve.log"
        self.config = tmp_path / "router.toml"
        self.config.write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}
        env["FASTAGI_ROUTER_API_TOKEN"] = TOKEN
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastagi_router", "serve", "--db", self.db,
             "--config", str(self.config), "--agi", f"127.0.0.1:{self.agi}",
             "--http", f"127.0.0.1:{self.http}", *args],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_for(lambda: b"FastAGI listening" in self.log_path.read_bytes(), 20)
        self.wait_for(self._http_up, 20)

    def _http_up(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=1).close()
        except OSError:
            return False
        return True

    def wait_for(self, condition: object, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if condition():  # type: ignore[operator]
                return
            if self.proc.poll() is not None:
                raise AssertionError(self.log())
            time.sleep(0.05)
        raise AssertionError(f"timed out; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, number: str = "0899990988", **kw: object) -> object:
        spec = CallSpec(callerid=number, port=self.agi)
        return asyncio.run(place_call("127.0.0.1", self.agi, spec, **kw))  # type: ignore[arg-type]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        finally:
            self._log.close()
        return code


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        server._log.close()


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``fastagi_router_<name>`` with ``labels`` in a scrape."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == f"fastagi_router_{name}" and labels.items() <= s.labels.items()
    )


def _cli(*argv: str) -> int:
    return main(list(argv))


def test_workers_share_the_socket_the_store_and_the_metrics(
    tmp_path: Path, served: list[Served]
) -> None:
    server = Served(tmp_path, "--workers", "2")
    served.append(server)
    server.wait_for(lambda: server.log().count("FastAGI listening") == 2, 20)
    first = [server.call(keypresses=[Keypress("")] * 3) for _ in range(6)]
    assert {r.status for r in first} == {"UNKNOWN"}  # type: ignore[attr-defined]
    assert _cli("routes", "set", "0899990988", "104", "--db", server.db) == 0
    after = [server.call() for _ in range(20)]
    # Whichever worker takes each call, the change applies to the very next one.
    assert {r.variables["SMARTROUTING_AGENT"] for r in after} == {"104"}  # type: ignore[attr-defined]
    assert {r.round_trips for r in after} == {1}  # type: ignore[attr-defined]
    server.wait_for(
        lambda: _sample(server.metrics(), "sessions_total", outcome="answered") == 26, 10
    )
    # Counters and histograms are summed over the workers; each state gauge counts workers.
    text = server.metrics()
    assert _sample(text, "calls_total", status="AGENT") == 20
    assert _sample(text, "decision_duration_seconds_count") == 26
    assert _sample(text, "call_round_trips_bucket", le="1.0") == 20
    assert _sample(text, "call_round_trips_count") == 26
    assert _sample(text, "upstream_circuit_state", state="closed") == 0  # no upstream API
    assert _sample(text, "sessions_active") == 0
    assert server.stop() == 0
    assert "did not stop in time" not in server.log()
    # Every call's line reached the log, buffered or not, from whichever worker.
    assert server.log().count("INFO fastagi_router.calls: call 1795653722.1 ") == 26
    assert "0899990988" not in server.log()  # the caller is masked by default


def test_an_erasure_applies_to_the_next_call_in_every_worker(
    tmp_path: Path, served: list[Served]
) -> None:
    server = Served(tmp_path, "--workers", "2")
    served.append(server)
    server.wait_for(lambda: server.log().count("FastAGI listening") == 2, 20)
    assert _cli("routes", "set", "0899990988", "104", "--db", server.db) == 0
    # Enough calls for both workers to hold the caller in their hot layer.
    before = [server.call() for _ in range(20)]
    assert {r.variables["SMARTROUTING_AGENT"] for r in before} == {"104"}  # type: ignore[attr-defined]
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http}/v1/erasure",
        data=b'{"phone_number": "+84899990988"}',
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert b'"routes": 1' in reply.read()
    after = [server.call(keypresses=[Keypress("")] * 3) for _ in range(20)]
    assert {r.status for r in after} == {"UNKNOWN"}  # type: ignore[attr-defined]
    assert server.stop() == 0


def test_a_worker_that_dies_is_restarted(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path, "--workers", "2")
    served.append(server)
    server.wait_for(lambda: server.log().count("serving FastAGI") == 2, 20)
    line = next(x for x in server.log().splitlines() if "started worker 0" in x)
    pid = int(line.rsplit("pid ", 1)[1].rstrip(")"))
    os.kill(pid, signal.SIGKILL)
    server.wait_for(lambda: server.log().count("serving FastAGI") == 3, 20)
    assert "worker 0 exited" in server.log()
    results = [server.call(keypresses=[Keypress("")] * 3) for _ in range(10)]
    assert {r.status for r in results} == {"UNKNOWN"}  # type: ignore[attr-defined]
    assert server.stop() == 0


def test_sigterm_lets_a_call_in_progress_finish(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path)
    served.append(server)
    assert _cli("routes", "set", "0899990988", "104", "--db", server.db) == 0

    async def scenario() -> tuple[object, object]:
        spec = CallSpec(callerid="0899990988", port=server.agi)
        slow = asyncio.create_task(
            place_call("127.0.0.1", server.agi, spec, faults=Faults(reply_delay=0.8))
        )
        await asyncio.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        late = await place_call("127.0.0.1", server.agi, spec, timeout=3)
        return await slow, late

    slow, late = asyncio.run(scenario())
    assert slow.status == "AGENT"  # type: ignore[attr-defined]
    assert late.closed_by == "refused"  # type: ignore[attr-defined]
    assert server.proc.wait(20) == 0


def test_sighup_reloads_and_refuses_a_bad_configuration(
    tmp_path: Path, served: list[Served]
) -> None:
    server = Served(tmp_path, config='default_queues = ["support"]\n')
    served.append(server)
    before = server.call("anonymous", keypresses=[Keypress("")] * 3)
    assert before.variables["SMARTROUTING_DEST1"] == "support"  # type: ignore[attr-defined]

    server.config.write_text('default_queues = ["overflow", "support"]\n[agi]\nbacklog = 77\n')
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(lambda: "configuration reloaded" in server.log(), 10)
    assert "need a restart: agi.backlog" in server.log()
    after = server.call("anonymous", keypresses=[Keypress("")] * 3)
    assert after.variables["SMARTROUTING_DEST1"] == "overflow"  # type: ignore[attr-defined]

    server.config.write_text('default_queues = ["bad,queue"]\n')
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(lambda: "configuration refused" in server.log(), 10)
    kept = server.call("anonymous", keypresses=[Keypress("")] * 3)
    assert kept.variables["SMARTROUTING_DEST1"] == "overflow"  # type: ignore[attr-defined]
    assert server.proc.poll() is None
    assert server.stop() == 0


def test_sighup_reaches_every_worker(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path, "--workers", "2", config='default_queues = ["support"]\n')
    served.append(server)
    server.wait_for(lambda: server.log().count("serving FastAGI") == 2, 20)
    server.config.write_text('default_queues = ["overflow"]\n')
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(lambda: server.log().count("configuration reloaded") == 3, 10)
    results = [server.call("anonymous", keypresses=[Keypress("")] * 3) for _ in range(10)]
    assert {r.variables["SMARTROUTING_DEST1"] for r in results} == {"overflow"}  # type: ignore[attr-defined]
    assert server.stop() == 0


def test_the_start_up_heap_is_set_aside_from_the_cyclic_gc() -> None:
    kept = [[]]
    kept[0].append(kept)  # a cycle made "at start-up"
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() > 0
        # Not in the oldest generation a full collection walks: in the permanent one.
        assert all(o is not kept for o in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()
