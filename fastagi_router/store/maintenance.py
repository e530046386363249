"""Backup, restore and schema upgrade of the SQLite store, for the command line.

These work on the file with the standard `sqlite3` module, not through `SQLiteStore`: a
backup must not migrate the store it copies, and a restore must not open the file it
replaces. Every failure raises `StoreError` with a message an administrator can act on, and
leaves the store as it was.

A backup uses SQLite's online backup API from a read transaction: it is a consistent
snapshot even while a router writes (WAL mode lets the writer go on meanwhile). A restore
replaces the store with ``os.replace`` (atomic on one file system) after removing the
``-wal`` and ``-shm`` files that belong to the old file; it refuses while another process
has the store open (see `in_use`). An upgrade runs the router's own migration code
(`SQLiteStore`'s, through `migrate_file`), so there is one way a store is migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastagi_router.errors import StoreError
from fastagi_router.store.schema import LATEST_VERSION
from fastagi_router.store.sqlite import migrate_file

#: Tables that every version of the schema has: a file without them is not a store.
_CORE_TABLES = frozenset({"routes", "customers", "customer_numbers"})
_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The schema version of a store before and after `migrate`."""

    before: int
    after: int


@contextlib.contextmanager
def _connect(path: str | Path, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    uri = Path(path).resolve().as_uri() + ("?mode=ro" if readonly else "?mode=rw")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def _require_file(path: str | Path) -> None:
    if not Path(path).is_file():
        raise StoreError(f"{path} does not exist or is not a file")


def schema_version(conn: sqlite3.Connection, path: str | Path) -> int:
    """Return the schema version of a fastagi-router store.

    Raises `StoreError` when the file is not an SQLite database, not a fastagi-router store,
    or of a schema version newer than this build knows.
    """
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not an SQLite database: {exc}") from exc
    if version == 0 and not tables:
        raise StoreError(f"{path} is an empty database, not a fastagi-router store")
    if version > LATEST_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this fastagi-router knows "
            f"({LATEST_VERSION}); upgrade fastagi-router"
        )
    if version < 1 or not _CORE_TABLES.issubset(tables):
        raise StoreError(f"{path} is not a fastagi-router store (tables: {sorted(tables)})")
    return version


def integrity_check(conn: sqlite3.Connection, path: str | Path) -> None:
    """Raise `StoreError` unless ``PRAGMA integrity_check`` and the foreign keys are sound."""
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check(100)")]
    if rows != ["ok"]:
        # One row may hold many lines; the message stays one line.
        problems = [p for r in rows for p in str(r).splitlines() if not p.startswith("***")]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StoreError(f"{path} fails the integrity check: {problems[0]}{more}")
    if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise StoreError(f"{path} fails the integrity check: foreign keys do not match")


def _temporary_beside(target: Path) -> Path:
    """A new, empty file in ``target``'s directory (so that os.replace stays atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def _remove(path: Path) -> None:
    for suffix in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def backup(source: str, dest: str, *, force: bool = False) -> int:
    """Copy the store ``source`` to ``dest`` consistently, even while a router writes to it,
    and check the copy; return its schema version.

    Raises `StoreError` if ``dest`` exists (unless ``force``), the source is not a store this
    build knows, or the copy fails its integrity check (``dest`` is then left untouched).
    """
    _require_file(source)
    target = Path(dest)
    if target.is_dir():
        raise StoreError(f"{dest} is a directory; name the backup file")
    if target.exists() and not force:
        raise StoreError(f"{dest} exists; use --force to overwrite it")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent} does not exist")
    partial = _temporary_beside(target)
    try:
        version = _checked_copy(source, partial, dest)
        os.replace(partial, target)
    except BaseException:
        _remove(partial)
        raise
    return version


def _checked_copy(source: str, partial: Path, name: str) -> int:
    """Copy the store ``source`` into the file ``partial`` with SQLite's backup API, as a
    self-contained file (no ``-wal`` beside it, whatever the source's journal), and check
    the copy (reported as ``name``); return its schema version."""
    with _connect(source, readonly=True) as src, _connect(partial) as out:
        version = schema_version(src, source)
        src.backup(out)
        out.execute("PRAGMA journal_mode = DELETE")
        integrity_check(out, name)
        if schema_version(out, name) != version:  # pragma: no cover - SQLite copies it
            raise StoreError(f"{name}: the copy lost the schema version")
    return version


def in_use(path: str) -> bool:
    """Return True when another process has the store open.

    A connection to a WAL database holds a shared lock on the ``-shm`` file for as long as
    it is open, so an exclusive ``locking_mode`` cannot take the write lock and reach the
    WAL index while one exists (the router keeps its connections open while it runs).
    """
    if not Path(path).exists():
        return False
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    except sqlite3.Error:
        return True
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()
    return False


def _keep_owner(target: Path, partial: Path) -> None:
    """Give ``partial`` the owner and mode of the store it replaces: a restore run as root
    must not leave a file that the router's own user cannot write."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return
    os.chmod(partial, st.st_mode & 0o777)
    with contextlib.suppress(PermissionError):
        os.chown(partial, st.st_uid, st.st_gid)


def restore(source: str, dest: str) -> int:
    """Replace the store ``dest`` with the backup ``source``; return its schema version.

    ``source`` is checked first (a fastagi-router store this build knows, sound) and copied
    beside ``dest``; only then is ``dest`` replaced, in one rename, and its old ``-wal`` and
    ``-shm`` files removed. A backup of an older schema is restored as it is: the next start
    (or ``migrate``) upgrades it.

    Raises `StoreError` (and changes nothing) when the source is unfit or ``dest`` is in use.
    """
    _require_file(source)
    target = Path(dest)
    if Path(source).resolve() == target.resolve():
        raise StoreError(f"{source} is the store itself")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent} does not exist")
    with _connect(source, readonly=True) as src:
        version = schema_version(src, source)
        integrity_check(src, source)
    if in_use(dest):
        raise StoreError(f"{dest} is in use (is the router running?); stop it first")
    partial = _temporary_beside(target)
    try:
        _checked_copy(source, partial, dest)
        if in_use(dest):
            raise StoreError(f"{dest} is in use (is the router running?); stop it first")
        _keep_owner(target, partial)
        for suffix in _SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                Path(f"{target}{suffix}").unlink()
        os.replace(partial, target)
    except BaseException:
        _remove(partial)
        raise
    return version


def pending(path: str) -> Upgrade:
    """Return the store's schema version and the version `migrate` would bring it to.

    Raises `StoreError` when the file is missing, not a store, or newer than this build.
    """
    _require_file(path)
    with _connect(path, readonly=True) as conn:
        return Upgrade(schema_version(conn, path), LATEST_VERSION)


def migrate(path: str) -> Upgrade:
    """Apply the pending migrations to the store at ``path``, each in one transaction, the
    way the router does when it opens the store.

    Raises `StoreError` (with the store at the last version fully applied) when one fails,
    or when the file is missing, not a store, or newer than this build.
    """
    before = pending(path).before
    asyncio.run(migrate_file(path))
    return Upgrade(before, pending(path).before)
