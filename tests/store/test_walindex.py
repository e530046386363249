"""The WAL-index change signal on its own: doubt is None, a bad file never crashes it, and
it never drops SQLite's locks. Read through a mapping (the default) or with ``pread``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


def watch_on(
    tmp_path: Path, shm: bytes, *, mapped: bool = True
) -> tuple[WalIndexWatch, Path, Clock]:
    db = tmp_path / "w.db"
    db.write_bytes(b"")
    shm_path = Path(f"{db}-shm")
    shm_path.write_bytes(shm)
    clock = Clock()
    watch = WalIndexWatch(str(db), clock=clock, mapped=mapped)
    assert watch.mapped is mapped
    return watch, shm_path, clock


def rewrite(path: Path, data: bytes) -> None:
    """Write in place (same inode), as SQLite does through its mapping."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


@pytest.mark.parametrize("mapped", [True, False])
def test_equal_copies_are_a_token_and_any_change_is_a_new_one(tmp_path: Path, mapped: bool) -> None:
    watch, shm, _ = watch_on(tmp_path, COPY + COPY + bytes(40), mapped=mapped)
    first = watch.token()
    assert first == COPY + COPY and watch.token() == first
    changed = COPY[:16] + (10).to_bytes(4, "little") + COPY[20:]
    rewrite(shm, changed + changed)
    second = watch.token()
    assert second is not None and second != first


@pytest.mark.parametrize("mapped", [True, False])
def test_doubt_is_none(tmp_path: Path, mapped: bool) -> None:
    other = COPY[:8] + (6).to_bytes(4, "little") + COPY[12:]
    not_built = COPY[:12] + b"\x00" + COPY[13:]
    watch, shm, _ = watch_on(tmp_path, COPY + other, mapped=mapped)  # a writer mid-way
    assert watch.token() is None
    rewrite(shm, not_built + not_built)
    assert watch.token() is None
    rewrite(shm, other + other)
    assert watch.token() is not None
    watch.close()
    assert watch.token() is None


def test_a_truncated_file_read_with_pread_is_doubt(tmp_path: Path) -> None:
    # What a process that thinks itself alone does to the file. (A mapped watch must never
    # see this: it reads only while SQLite's connections hold the file, see below.)
    watch, shm, _ = watch_on(tmp_path, COPY + COPY, mapped=False)
    assert watch.token() is not None
    os.truncate(shm, 3)
    assert watch.token() is None
    os.truncate(shm, 0)
    assert watch.token() is None


def test_a_file_too_short_for_a_header_is_read_with_pread(tmp_path: Path) -> None:
    watch, shm, _ = watch_on(tmp_path, COPY, mapped=False)
    assert WalIndexWatch(watch.db_path).mapped is False
    assert watch.token() is None  # one copy only: not a header
    rewrite(shm, COPY + COPY)
    assert watch.token() == COPY + COPY


@pytest.mark.parametrize("mapped", [True, False])
def test_a_replaced_or_missing_file_is_doubt_for_good(tmp_path: Path, mapped: bool) -> None:
    watch, shm, clock = watch_on(tmp_path, COPY + COPY, mapped=mapped)
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


async def test_another_process_never_truncates_a_file_the_store_holds(tmp_path: Path) -> None:
    # The mapped watch relies on this: while the store's connections are open, a process
    # that opens the database, reads, writes and closes (its last connection) neither
    # truncates nor deletes the -shm, so reading the mapping cannot fault.
    path = tmp_path / "t.db"
    store = await SQLiteStore.open(str(path))
    try:
        watch = store._wal_watch
        assert watch is not None and watch.mapped
        before = watch.token()
        shm = f"{path}-shm"
        inode, size = os.stat(shm).st_ino, os.stat(shm).st_size
        script = (
            "import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('PRAGMA journal_mode = WAL')\n"
            "conn.execute('CREATE TABLE IF NOT EXISTS probe (x)')\n"
            "conn.execute('INSERT INTO probe VALUES (1)')\n"
            "conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
            "conn.close()\n"
        )
        python(script, str(path))
        assert (os.stat(shm).st_ino, os.stat(shm).st_size) == (inode, size)
        after = watch.token()
        assert after is not None and after != before
    finally:
        await store.close()
    assert watch.token() is None  # closed with the store, before its connections
