"""The real ``fastagi-router serve`` process, switched on by the issue's environment
variables, learns from the fake Manager and routes the next call with what it learned."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

from fastagi_router.simulator import Asterisk, CallSpec
from tests.ami.support import eventually
from tests.fakes.ami import QUEUE_CALL, load, with_variable

QUEUE = load(QUEUE_CALL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _learned(db: Path) -> list[tuple[str, str, str]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT account, agent, origin FROM routes WHERE number_key = '+84899990988'"
        ).fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet
    finally:
        conn.close()


async def test_serve_learns_from_the_manager_and_stops_cleanly(
    fake_manager: Any, tmp_path: Path
) -> None:
    fake = await fake_manager()
    port = _free_port()
    db = tmp_path / "served.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}
    env.update(
        {
            "FASTAGI_ROUTER_AMI_HOST": "127.0.0.1",
            "FASTAGI_ROUTER_AMI_PORT": str(fake.port),
            "FASTAGI_ROUTER_AMI_USERNAME": "router",
            "FASTAGI_ROUTER_AMI_SECRET": "s3cret",
            "FASTAGI_ROUTER_LEARNING_QUEUES": "support",
        }
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fastagi_router",
            "serve",
            "--db",
            str(db),
            "--agi",
            f"127.0.0.1:{port}",
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            await eventually(fake.logged_in, "the served router to log in", 30)
            blocks = [with_variable(b, "SR_ACCOUNT", "CL0000") for b in QUEUE.events]
            await fake.send(blocks)
            await eventually(lambda: _learned(db), "the learned route", 30)
            assert _learned(db) == [("CL0000", "104", "learned")]
            spec = CallSpec(callerid="0899990988", script="route?account=CL0000", port=port)
            result = await Asterisk(port=port).call(spec)
            assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
            assert result.variables["SMARTROUTING_AGENT"] == "104"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                await proc.wait()
    output = log_path.read_text()
    assert proc.returncode == 0, output
    assert "logged in as 'router'" in output
    assert "learning: CL0000 +84899990988 -> 104 (queue support" in output
    assert "s3cret" not in output
