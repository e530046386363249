"""`Served`: a real ``fastagi-router serve`` process on 127.0.0.1, ports chosen by the kernel.

Starts ``python -m fastagi_router serve --agi 127.0.0.1:0 --http 127.0.0.1:0`` with a store
file and an API token in the environment, and reads the ports it bound from its log. Used
by the process tests (``kill -9``) and by the bench scripts.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

#: Write access to every account, for the served process.
SERVED_TOKEN = "served-admin-token-0123456789"
_AGI = re.compile(r"FastAGI listening on 127\.0\.0\.1:(\d+)")
_HTTP = re.compile(r"REST API listening on 127\.0\.0\.1:(\d+)")


class Served:
    """One ``serve`` process. ``await start()``, then `kill` or `terminate`."""

    def __init__(self, db: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.log = log
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.agi_port = 0
        self.http_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, timeout: float = 20.0) -> Served:
        """Start the process and wait until both listeners are up. Raises `RuntimeError`
        (with the log) if it exits or does not come up in time."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}
        env.update({"FASTAGI_ROUTER_API_TOKEN": SERVED_TOKEN, **self.env})
        self.log.write_bytes(b"")
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fastagi_router",
                "serve",
                "--db",
                str(self.db),
                "--agi",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                env=env,
                stdout=out,
                stderr=out,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            text = self.log.read_text(errors="replace")
            agi, http = _AGI.search(text), _HTTP.search(text)
            if agi and http:
                self.agi_port, self.http_port = int(agi.group(1)), int(http.group(1))
                return self
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await self.kill()
        raise RuntimeError(f"serve did not come up:\n{self.log.read_text(errors='replace')}")

    async def kill(self) -> None:
        """``kill -9`` and reap."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        if self.proc is not None:
            await self.proc.wait()

    async def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM; return the exit status (the process is killed if it outlasts ``timeout``)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            await self.kill()
            raise

    async def __aenter__(self) -> Served:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.kill()
