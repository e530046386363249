"""healthcheck, backup, restore and migrate, on real SQLite files and a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastagi_router.store import SQLiteStore
from fastagi_router.store.maintenance import in_use
from fastagi_router.store.schema import LATEST_VERSION, MIGRATIONS
from tests.test_cli import _free_port, run


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}


@pytest.fixture(autouse=True)
def _no_router_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FASTAGI_ROUTER_"):
            monkeypatch.delenv(name)


def make_store(path: Path, routes: int = 0) -> None:
    async def work() -> None:
        store = await SQLiteStore.open(str(path))
        try:
            for i in range(routes):
                await store.set_route("default", f"0899{i:06d}", f"+84899{i:06d}", "104")
        finally:
            await store.close()

    asyncio.run(work())


def count(path: Path, table: str = "routes") -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def old_store(path: Path, version: int) -> None:
    """A store as an older release left it: the migrations up to ``version`` only."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:version]:
        for statement in migration.statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


# -- healthcheck --------------------------------------------------------------------------


@contextlib.contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[tuple[int, int]]:
    """A real `serve` process: FastAGI on every interface, the REST API on 127.0.0.1."""
    agi, http = _free_port(), _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastagi_router", "serve", "--db", str(tmp_path / "s.db")],
        env={
            **_clean_env(),
            "FASTAGI_ROUTER_AGI_LISTEN": f"0.0.0.0:{agi}",
            "FASTAGI_ROUTER_HTTP_LISTEN": f"127.0.0.1:{http}",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while b"REST API listening" not in (tmp_path / "serve.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        yield agi, http
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, int]]:
    with serving(tmp_path) as ports:
        yield ports


def test_healthcheck_passes_against_a_running_router(
    served: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    agi, http = served
    monkeypatch.setenv("FASTAGI_ROUTER_AGI_LISTEN", f"0.0.0.0:{agi}")  # reached on 127.0.0.1
    monkeypatch.setenv("FASTAGI_ROUTER_HTTP_LISTEN", f"127.0.0.1:{http}")
    code, out = run("healthcheck")
    assert code == 0
    assert out == (
        f"FastAGI 127.0.0.1:{agi} accepts connections; http://127.0.0.1:{http}/readyz ready\n"
    )
    # As the Dockerfile runs it: a process, with the settings in its environment.
    proc = subprocess.run(
        [sys.executable, "-m", "fastagi_router", "healthcheck", "--timeout", "1"],
        env={
            **_clean_env(),
            "FASTAGI_ROUTER_AGI_LISTEN": f"0.0.0.0:{agi}",
            "FASTAGI_ROUTER_HTTP_ENABLED": "false",
        },
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"FastAGI 127.0.0.1:{agi} accepts connections\n"


def test_healthcheck_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trustme = pytest.importorskip("trustme")
    cert = trustme.CA().issue_cert("router.example.com")  # not the address asked
    cert_path, key_path = tmp_path / "server.crt", tmp_path / "server.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    tls = {"FASTAGI_ROUTER_HTTP_TLS_CERT": str(cert_path)}
    tls["FASTAGI_ROUTER_HTTP_TLS_KEY"] = str(key_path)
    with serving(tmp_path, **tls) as (agi, http):
        for name, value in tls.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("FASTAGI_ROUTER_AGI_LISTEN", f"0.0.0.0:{agi}")
        monkeypatch.setenv("FASTAGI_ROUTER_HTTP_LISTEN", f"127.0.0.1:{http}")
        code, out = run("healthcheck")
    assert code == 0
    assert out.endswith(f"; https://127.0.0.1:{http}/readyz ready\n")


def test_healthcheck_fails_on_a_dead_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    monkeypatch.setenv("FASTAGI_ROUTER_AGI_LISTEN", f"127.0.0.1:{port}")
    started = time.monotonic()
    assert run("healthcheck", "--timeout", "1") == (1, "")
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err == f"FastAGI 127.0.0.1:{port}: Connection refused\n"


def test_healthcheck_fails_when_the_rest_api_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as listener:  # accepts, like a router whose HTTP side is down
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        agi = listener.getsockname()[1]
        http = _free_port()
        monkeypatch.setenv("FASTAGI_ROUTER_AGI_LISTEN", f"127.0.0.1:{agi}")
        monkeypatch.setenv("FASTAGI_ROUTER_HTTP_LISTEN", f"127.0.0.1:{http}")
        assert run("healthcheck", "--timeout", "1")[0] == 1
    assert capsys.readouterr().err.startswith(f"http://127.0.0.1:{http}/readyz: ")


def test_healthcheck_with_a_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTAGI_ROUTER_AGI_LISTEN", "nowhere")
    assert run("healthcheck")[0] == 2
    assert "agi.listen" in capsys.readouterr().err


# -- backup -------------------------------------------------------------------------------


def test_backup_copies_and_checks(tmp_path: Path) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    make_store(db, routes=3)
    code, out = run("backup", str(copy), "--db", str(db))
    assert code == 0
    assert out == f"backed up {db} to {copy} (schema version {LATEST_VERSION}, checked)\n"
    assert count(copy) == 3
    # A self-contained file: no WAL beside it.
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("backup")) == [
        "backup.db"
    ]


def test_backup_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    make_store(db, routes=1)
    copy.write_bytes(b"precious")
    assert run("backup", str(copy), "--db", str(db))[0] == 3
    assert "exists; use --force" in capsys.readouterr().err
    assert copy.read_bytes() == b"precious"
    assert run("backup", str(copy), "--db", str(db), "--force")[0] == 0
    assert count(copy) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "empty database"),
        (b"not a database at all" * 300, "is not an SQLite database"),
    ],
)
def test_backup_of_something_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    if content is not None:
        db.write_bytes(content)
    assert run("backup", str(copy), "--db", str(db))[0] == 3
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == ([db] if content is not None else [])


def test_backup_while_writes_run_is_a_consistent_snapshot(tmp_path: Path) -> None:
    """A writer adds routes two by two, in one transaction each: every backup taken meanwhile
    holds an even number of them and passes the integrity check."""
    db = tmp_path / "r.db"
    make_store(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    with conn:
        conn.executemany(  # some bulk, so that a copy takes a while
            "INSERT INTO customers (account, customer_id, name, created_at, updated_at) "
            "VALUES ('default', ?, ?, 'now', 'now')",
            [(f"C{i}", "x" * 200) for i in range(20000)],
        )
    stop = threading.Event()
    written = [0]

    def write() -> None:
        writer = sqlite3.connect(db, isolation_level=None, timeout=10)
        try:
            while not stop.is_set():
                n = written[0]
                writer.execute("BEGIN IMMEDIATE")
                for k in (n, n + 1):
                    writer.execute(
                        "INSERT INTO routes (account, phone_number, number_key, agent, "
                        "created_at, updated_at) VALUES ('default', ?, ?, '104', 'now', 'now')",
                        (str(k), f"+{k}"),
                    )
                writer.execute("COMMIT")
                written[0] = n + 2
        finally:
            writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        counts = []
        for i in range(5):
            copy = tmp_path / f"backup{i}.db"
            assert run("backup", str(copy), "--db", str(db))[0] == 0
            counts.append(count(copy))
            assert count(copy, "customers") == 20000
    finally:
        stop.set()
        thread.join()
    conn.close()
    assert all(c % 2 == 0 for c in counts), counts
    assert counts[-1] > 0 and written[0] > counts[0], (counts, written[0])


# -- restore ------------------------------------------------------------------------------


def test_restore_replaces_the_store_and_its_side_files(tmp_path: Path) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    make_store(db, routes=2)
    assert run("backup", str(copy), "--db", str(db))[0] == 0
    make_store(db, routes=5)
    db.chmod(0o640)
    Path(f"{db}-wal").write_bytes(b"")
    Path(f"{db}-shm").write_bytes(b"\0" * 32768)
    code, out = run("restore", str(copy), "--db", str(db))
    assert code == 0
    assert out == f"restored {copy} to {db} (schema version {LATEST_VERSION})\n"
    assert count(db) == 2
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    assert db.stat().st_mode & 0o777 == 0o640
    assert count(copy) == 2  # the backup itself is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "r.db"]


def test_restore_into_a_new_place(tmp_path: Path) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    make_store(copy, routes=1)
    assert run("restore", str(copy), "--db", str(db))[0] == 0
    assert count(db) == 1


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page + 16, len(data), page):  # every page's header, not the first
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["missing", "not sqlite", "not a store", "newer", "corrupt"])
def test_restore_refuses_an_unfit_source_and_keeps_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    db, source = tmp_path / "r.db", tmp_path / "source.db"
    make_store(db, routes=3)
    before = db.read_bytes()
    if kind == "not sqlite":
        source.write_text("routes,agent\n")
    elif kind == "not a store":
        conn = sqlite3.connect(source)
        conn.execute("CREATE TABLE t (x)")
        conn.close()
    elif kind == "newer":
        make_store(source, routes=1)
        conn = sqlite3.connect(source)
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
        conn.close()
    elif kind == "corrupt":
        make_store(source, routes=300)
        _corrupt(source)
    assert run("restore", str(source), "--db", str(db))[0] == 3
    err = capsys.readouterr().err
    expected = {
        "missing": "does not exist",
        "not sqlite": "is not an SQLite database",
        "not a store": "is not a fastagi-router store",
        "newer": "newer than this fastagi-router knows",
        "corrupt": "fails the integrity check: ",
    }[kind]
    assert err.startswith("fastagi-router: store error: ") and expected in err
    assert len(err.splitlines()) == 1
    assert db.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_restore_refuses_while_a_router_uses_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    make_store(copy, routes=1)

    async def hold() -> None:
        store = await SQLiteStore.open(str(db))
        try:
            assert in_use(str(db))
            assert run("restore", str(copy), "--db", str(db))[0] == 3
        finally:
            await store.close()

    asyncio.run(hold())
    assert "is in use (is the router running?); stop it first" in capsys.readouterr().err
    assert count(db) == 0
    assert not in_use(str(db))
    assert run("restore", str(copy), "--db", str(db))[0] == 0


# -- migrate ------------------------------------------------------------------------------


def test_migrate_upgrades_an_older_store(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    old_store(db, 1)
    assert run("migrate", "--check", "--db", str(db)) == (
        1,
        f"{db}: schema version 1, {LATEST_VERSION} pending\n",
    )
    assert run("migrate", "--db", str(db)) == (0, f"{db}: schema version 1 -> {LATEST_VERSION}\n")
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    assert conn.execute("SELECT count(*) FROM upstream_cache").fetchone()[0] == 0
    conn.close()
    expected = f"{db}: schema version {LATEST_VERSION}, up to date\n"
    assert run("migrate", "--db", str(db)) == (0, expected)
    assert run("migrate", "--check", "--db", str(db)) == (0, expected)


def test_migrate_refuses_a_newer_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    make_store(db)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    assert run("migrate", "--db", str(db))[0] == 3
    assert "newer than this fastagi-router knows" in capsys.readouterr().err


def test_migrate_does_not_create_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "typo.db"
    assert run("migrate", "--db", str(db))[0] == 3
    assert "does not exist" in capsys.readouterr().err
    assert not db.exists()


def test_migrate_refuses_while_the_store_is_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    old_store(db, 1)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("SELECT count(*) FROM routes").fetchone()
    try:
        assert run("migrate", "--db", str(db))[0] == 3
    finally:
        holder.close()
    assert "in use" in capsys.readouterr().err
    assert run("migrate", "--db", str(db))[0] == 0


def test_restore_and_migrate_refuse_while_serve_runs(
    served: tuple[int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, copy = tmp_path / "s.db", tmp_path / "backup.db"
    assert run("backup", str(copy), "--db", str(db))[0] == 0  # while it runs: fine
    assert run("restore", str(copy), "--db", str(db))[0] == 3
    assert "in use (is the router running?)" in capsys.readouterr().err
    assert run("migrate", "--db", str(db))[0] == 0  # nothing pending: only reports
