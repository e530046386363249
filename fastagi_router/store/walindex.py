"""`WalIndexWatch`: has anything committed to an SQLite file in WAL mode? Its header says.

Theory of operation. In WAL mode what a reader sees is the database file plus the frames of
the current WAL generation up to the last commit. The WAL-index header at the start of the
``-shm`` file (https://sqlite.org/walformat.html, ``WalIndexHdr`` in SQLite's ``wal.c``)
names both: ``mxFrame``, the last committed frame, and ``aSalt``, the generation (salt-1 is
incremented and salt-2 drawn at random whenever the WAL restarts after a checkpoint). Every
commit, by any connection of any process, rewrites that header, and does so before any
reader can see the commit, since readers take their snapshot from it: ``mxFrame`` grows,
or, when the commit restarts the WAL, the salts change (``iChange`` counts commits too).
Committed frames of one generation are never rewritten, so two equal headers mean the same
committed content. Header bytes equal to the last ones read therefore mean that nothing was
committed since; different bytes mean a commit, or only a checkpoint (a false positive,
which costs a cache drop and nothing else).

The 48-byte header is stored twice; a writer writes the second copy, then the first.
Copies that differ mean a writer caught in the middle, and a zero ``isInit`` a header not
built yet: both are doubt, answered with None.

The header is read through a read-only mapping of the file's first bytes, as SQLite's own
connections read it through theirs: no system call per check. (A ``pread`` per call
releases and retakes the GIL and enters the kernel: about 3 us of a call in context, where
the mapping costs a 96-byte copy; ``python -m bench.change_signal``.) Reading a mapping of
a file that was truncated since raises SIGBUS and kills the process; SQLite's mappings of
the same file have that property too, and the watch only reads while its store's SQLite
connections are open: they hold the shared lock that keeps any other SQLite process from
truncating a ``-shm`` it would find unused (a file replaced or deleted keeps its inode
mapped, and is caught below). The store closes the watch before its connections. A file
too short to hold a header when the watch opens is read with ``pread`` instead, where a
truncated file is a short read.

The descriptor on the ``-shm`` is never closed: POSIX record locks belong to a process and
a file, and closing *any* descriptor of the file drops every lock the process holds on it,
SQLite's included (the shared lock that tells other processes the WAL-index is in use; one
that thought itself alone would rebuild the WAL-index under our connections). One
descriptor per ``-shm`` file, kept for the life of the process, in `_SHM_FDS`; likewise
one mapping, in `_SHM_MAPS`, since Python's `mmap.mmap` holds a descriptor of its own
(a duplicate) and closes it when the mapping is closed or collected.

Once a second at most (`IDENTITY_EVERY_S`), the watch checks that the database and the
``-shm`` at their paths are still the files it opened. A file deleted or replaced under an
open SQLite connection leaves that connection on the old file (SQLite does not reopen);
the watch then answers None for good, and logs why: only a restart reads the new file.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from collections.abc import Callable

log = logging.getLogger("fastagi_router.store")

#: Both copies of the 48-byte WAL-index header.
HEADER_BYTES = 96
_COPY = HEADER_BYTES // 2
#: Offset of ``isInit`` in a copy: zero until the header is built.
_IS_INIT = 12
#: How often, at most, the files' identities are checked (two ``stat`` calls).
IDENTITY_EVERY_S = 1.0

#: ``-shm`` descriptors by (st_dev, st_ino); never closed (see the module docstring). A
#: process-wide table because POSIX locks are process-wide.
_SHM_FDS: dict[tuple[int, int], int] = {}


#: Read-only mappings of those files' headers, by the same key; never closed either.
_SHM_MAPS: dict[tuple[int, int], mmap.mmap] = {}


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _shm_fd(shm_path: str) -> int:
    """A read-only descriptor on ``shm_path``, shared by every watch of this process on the
    same file. Raises `OSError` when the file cannot be opened."""
    fd = _SHM_FDS.get(_identity(os.stat(shm_path)))
    if fd is None:
        fd = os.open(shm_path, os.O_RDONLY | os.O_CLOEXEC)
        fd = _SHM_FDS.setdefault(_identity(os.fstat(fd)), fd)
    return fd


def _shm_map(fd: int) -> mmap.mmap | None:
    """A read-only mapping of the header of the ``-shm`` open on ``fd``, shared by every
    watch of this process on the file; None when the file is too short to hold a header
    (SQLite has not built one yet) or cannot be mapped."""
    st = os.fstat(fd)
    key = _identity(st)
    mapping = _SHM_MAPS.get(key)
    if mapping is None and st.st_size >= HEADER_BYTES:
        try:
            mapping = _SHM_MAPS.setdefault(key, mmap.mmap(fd, HEADER_BYTES, prot=mmap.PROT_READ))
        except (OSError, ValueError):
            return None
    return mapping


class WalIndexWatch:
    """The change signal of one database file in WAL mode. Create it with `open`."""

    def __init__(
        self,
        db_path: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        identity_every: float = IDENTITY_EVERY_S,
        mapped: bool = True,
    ) -> None:
        self.db_path = db_path
        self.shm_path = f"{db_path}-shm"
        self._db_id = _identity(os.stat(db_path))
        self._fd = _shm_fd(self.shm_path)
        self._shm_id = _identity(os.fstat(self._fd))
        #: The header's mapping, or None: read with ``pread``.
        self._map = _shm_map(self._fd) if mapped else None
        self._closed = False
        self._clock = clock
        self._identity_every = identity_every
        self._check_at = 0.0
        self._last: bytes | None = None
        #: Why the watch gave up for good (a file replaced or deleted), or None.
        self.lost: str | None = None

    @classmethod
    def open(
        cls, db_path: str, *, clock: Callable[[], float] = time.monotonic
    ) -> WalIndexWatch | None:
        """Return a watch on ``db_path`` (the name SQLite opened) and its ``-shm``, or None
        when the ``-shm`` cannot be read (the caller then uses another signal)."""
        try:
            return cls(db_path, clock=clock)
        except OSError as exc:
            log.warning("store: cannot read %s-shm (%s); using PRAGMA data_version", db_path, exc)
            return None

    def token(self) -> bytes | None:
        """Return the WAL-index header: bytes that differ from the last ones returned
        whenever a commit may have happened since; None when in doubt (a header being
        written, a short read, an error, a file replaced, the watch closed). Never raises."""
        if self._closed or (self._clock() >= self._check_at and not self._same_files()):
            return None
        try:
            if self._map is not None:
                head = self._map[:HEADER_BYTES]
            else:
                head = os.pread(self._fd, HEADER_BYTES, 0)
        except OSError:
            return None
        if head == self._last:
            return self._last
        if len(head) != HEADER_BYTES or head[:_COPY] != head[_COPY:] or not head[_IS_INIT]:
            return None
        self._last = head
        return head

    @property
    def mapped(self) -> bool:
        """True when the header is read through a mapping rather than with ``pread``."""
        return self._map is not None

    def close(self) -> None:
        """Stop reading the file: `token` answers None from now on. Call it before the
        SQLite connections on the file are closed (see the module docstring)."""
        self._closed = True
        self._map = None

    def _same_files(self) -> bool:
        """True if the paths still name the files this watch (and SQLite) opened."""
        if self.lost is not None:
            return False
        try:
            same_db = _identity(os.stat(self.db_path)) == self._db_id
            same_shm = _identity(os.stat(self.shm_path)) == self._shm_id
        except OSError as exc:
            self.lost = f"{exc.strerror}: {exc.filename}"
        else:
            if same_db and same_shm:
                self._check_at = self._clock() + self._identity_every
                return True
            self.lost = f"{self.db_path if not same_db else self.shm_path} was replaced"
        log.error(
            "store: %s while the router has it open; nothing is answered from memory any "
            "more, and reads may see the old file until the router is restarted",
            self.lost,
        )
        return False
