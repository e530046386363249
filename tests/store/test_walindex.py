"""The WAL-index change signal on its own: doubt is None, a bad file never crashes it, and
it never drops SQLite's locks."""

from __future__ import annotations

import os
from pathlib import Path

from fastagi_router.store import SQLiteStore
from fastagi_router.store.walindex import HEADER_BYTES, WalIndexWatch
from tests.store.test_hot import python

#: A plausible 48-byte header copy: iVersion 3007000, iChange 5, isInit 1, mxFrame 9.
COPY = (
    (3007000).to_bytes(4, "little")
    + bytes(4)
    + (5).to_bytes(4, "little")
    + b"\x01\x00\x00\x10"
    + (9).to_bytes(4, "little")
    + bytes(28)
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watch_on(tmp_path: Path, shm: bytes) -> tuple[WalIndexWatch, Path, Clock]:
    db = tmp_path / "w.db"
    db.write_bytes(b"")
    shm_path = Path(f"{db}-shm")
    shm_path.write_bytes(shm)
    clock = Clock()
    watch = WalIndexWatch.open(str(db), clock=clock)
    assert watch is not None
    return watch, shm_path, clock


def rewrite(path: Path, data: bytes) -> None:
    """Write in place (same inode), as SQLite does through its mapping."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def test_equal_copies_are_a_token_and_any_change_is_a_new_one(tmp_path: Path) -> None:
    watch, shm, _ = watch_on(tmp_path, COPY + COPY + bytes(40))
    first = watch.token()
    assert first == COPY + COPY and watch.token() == first
    changed = COPY[:16] + (10).to_bytes(4, "little") + COPY[20:]
    rewrite(shm, changed + changed)
    second = watch.token()
    assert second is not None and second != first


def test_doubt_is_none(tmp_path: Path) -> None:
    other = COPY[:8] + (6).to_bytes(4, "little") + COPY[12:]
    not_built = COPY[:12] + b"\x00" + COPY[13:]
    watch, shm, _ = watch_on(tmp_path, COPY + other)  # a writer between the two copies
    assert watch.token() is None
    rewrite(shm, not_built + not_built)
    assert watch.token() is None
    rewrite(shm, other + other)
    assert watch.token() is not None
    os.truncate(shm, 3)  # what a process that thinks itself alone does to the file
    assert watch.token() is None
    os.truncate(shm, 0)
    assert watch.token() is None


def test_a_replaced_or_missing_file_is_doubt_for_good(tmp_path: Path) -> None:
    watch, shm, clock = watch_on(tmp_path, COPY + COPY)
    assert watch.token() is not None
    os.unlink(shm)
    assert watch.token() is not None  # the identity is checked once a second at most
    clock.now = 1.5
    assert watch.token() is None and watch.lost is not None
    shm.write_bytes(COPY + COPY)
    clock.now = 10.0
    assert watch.token() is None


def test_without_a_shm_there_is_no_watch(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    db.write_bytes(b"")
    assert WalIndexWatch.open(str(db)) is None
    assert len(COPY) * 2 == HEADER_BYTES


async def test_closing_a_store_keeps_the_locks_of_the_others(tmp_path: Path) -> None:
    # POSIX locks belong to the process: closing any descriptor of the -shm would drop the
    # shared lock SQLite's connections hold on its DMS byte (128), and another process could
    # then rebuild the WAL-index under them. The watch never closes its descriptor.
    path = tmp_path / "l.db"
    first = await SQLiteStore.open(str(path))
    second = await SQLiteStore.open(str(path))
    try:
        assert first.change_token_now() is not None
        await second.close()
        probe = (
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n"
            "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n"
            "except OSError:\n"
            "    print('held')\n"
            "else:\n"
            "    print('free')\n"
        )
        assert python(probe, f"{path}-shm").strip() == "held"
    finally:
        await first.close()
