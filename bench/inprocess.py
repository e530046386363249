"""The Python cost of one call, without sockets: a protocol object fed bytes in-process.

Two figures: a recognised caller through the real `Application` (store, hot layer,
router, engine fast path; a stub transport), and the engine alone answering a fixed
decision. Only the interpreter is measured, not the kernel or the event loop's I/O.

The per-call log line is off by default (the calls logger at WARNING); ``--call-log text``
or ``--call-log json`` turns it on, written to stderr (redirect it: ``2>/tmp/calls.log``).

    python -m bench.inprocess [--calls 20000] [--call-log text|json]

Each figure is the best of five runs of ``--calls`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import seed
from fastagi_router.app import Application
from fastagi_router.config import HTTPSettings, LogSettings, Settings
from fastagi_router.logutil import configure
from fastagi_router.metrics import Metrics
from fastagi_router.routing.decision import Decision, Status
from fastagi_router.server import AGIServer, Answer
from fastagi_router.server.engine import _AGIProtocol
from fastagi_router.simulator import CallSpec, header_block

BLOCK = header_block(CallSpec())
REPLY = b"200 result=0\n"
REPEATS = 5


class _Transport:
    def __init__(self) -> None:
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close


def _per_call(server: AGIServer, calls: int) -> float:
    def one() -> None:
        protocol = _AGIProtocol(server)
        transport = _Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(BLOCK)
        protocol.data_received(REPLY)
        assert transport.closing
        protocol.connection_lost(None)

    for _ in range(2000):
        one()
    best = float("inf")
    for _ in range(REPEATS):  # the best of a few: what the code costs, not what else ran
        start = time.perf_counter()
        for _ in range(calls):
            one()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


async def main(calls: int, tmp: str, call_log: str) -> None:
    levels = {"fastagi_router.calls": "INFO" if call_log else "WARNING"}
    log = LogSettings(level="WARNING", format=call_log or "text", levels=levels)
    configure(log)
    settings = Settings(db=f"{tmp}/small.db", log=log, http=HTTPSettings(enabled=False))
    app = await Application.start(settings)
    try:
        assert app.agi is not None
        print(f"recognised caller, whole router: {_per_call(app.agi, calls):.1f} us per call")
    finally:
        await app.stop()
    variables = Decision(
        Status.AGENT,
        agent="104",
        destinations=("207", "209", "214", "216"),
        number="+84899990988",
        identified_by="number",
        source="local",
    ).variables()
    fixed = Answer(variables, "AGENT", source="local", account="default")
    engine = AGIServer(
        Settings(),
        {},
        lambda request, reason: fixed,
        Metrics(),
        fast_handlers={"route": lambda request: fixed},
    )
    engine.handlers["route"] = None  # type: ignore[assignment]  # never awaited: fast path
    print(f"engine alone, fixed answer:      {_per_call(engine, calls):.1f} us per call")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--call-log", choices=("text", "json"), default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fastagi-inprocess-") as directory:
        seed.prepare(Path(directory), large=False)
        asyncio.run(main(args.calls, directory, args.call_log))
