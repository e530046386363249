"""Another process that holds an SQLite file's lock, as a careless tool would.

``python -m tests.fakes.locker DB [write|exclusive]`` opens ``DB``, writes in a transaction
it keeps open, prints ``locked`` and holds the lock until a line (or EOF) arrives on
standard input; then it rolls back and exits. `Locker` runs it from a test.

* ``write``: the write lock (``BEGIN IMMEDIATE``), as a long import or an ``sqlite3``
  shell left in a transaction holds it. Nobody else can write; in WAL mode everyone can
  still read.
* ``exclusive``: ``PRAGMA locking_mode = EXCLUSIVE`` and ``BEGIN EXCLUSIVE``: nobody else
  can even read. In WAL mode every open connection keeps a shared lock on the file, so
  this lock can only be taken while no other process has the file open.
* ``readers``: exclusive POSIX locks on the WAL-index read marks (bytes 120-127 of the
  ``-shm`` file, see https://sqlite.org/walformat.html), as a process stopped in the middle
  of a checkpoint or a WAL restart holds them. Every reader, whatever its busy timeout,
  then retries for about 10 s inside SQLite and fails with "locking protocol".
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]
#: The WAL-index lock bytes short of the DMS byte, which every open connection holds.
_READ_MARKS_START, _READ_MARKS_LEN = 120, 8


def main(path: str, mode: str) -> int:
    if mode == "readers":
        fd = os.open(f"{path}-shm", os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _READ_MARKS_LEN, _READ_MARKS_START)
        print("locked", flush=True)
        sys.stdin.readline()
        os.close(fd)
        return 0
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    if mode == "exclusive":
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
    else:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE routes SET agent = agent")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    conn.close()
    return 0


class Locker:
    """``async with Locker(db):`` the lock is held inside the block, released after it."""

    def __init__(self, db: Path | str, mode: str = "write") -> None:
        self.db = str(db)
        self.mode = mode
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Locker:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes.locker",
            self.db,
            self.mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=_REPO,
        )
        assert self._proc.stdout is not None
        async with asyncio.timeout(15):
            line = await self._proc.stdout.readline()
        if line.strip() != b"locked":
            await self.release()
            raise RuntimeError(f"the locker did not take the lock: {line!r}")
        return self

    async def release(self) -> None:
        """Let go of the lock and wait for the process to end."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "write"))
