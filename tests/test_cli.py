"""The fastagi-router command, in process and as a real server process."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastagi_router.csvio import COLUMNS
from fastagi_router.store import SQLiteStore
from tests.conftest import run_cli as run

HEADER = ",".join(COLUMNS)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


def test_routes_set_list_delete(db: str) -> None:
    code, out = run("routes", "set", "0899990988", "104", "--db", db)
    assert code == 0 and "+84899990988" in out and "104" in out
    code, out = run("routes", "set", "+84 899 990 988", "105", "--db", db, "--account", "CL0000")
    assert code == 0
    code, out = run("routes", "list", "--db", db)
    assert code == 0
    assert out.count("+84899990988") == 2
    code, out = run("routes", "list", "--db", db, "--account", "CL0000")
    assert "105" in out and "104" not in out
    assert run("routes", "delete", "0084899990988", "--db", db)[0] == 0
    assert run("routes", "delete", "0899990988", "--db", db)[0] == 1
    assert "104" not in run("routes", "list", "--db", db, "--account", "default")[1]


def test_routes_bad_input_is_a_clear_error(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("routes", "set", "hello", "104", "--db", db)[0] == 2
    assert "phone_number" in capsys.readouterr().err
    assert run("routes", "set", "0899990988", "104,105", "--db", db)[0] == 2
    assert "agent" in capsys.readouterr().err
    assert run("routes", "set", "0899990988", "104", "--db", db, "--account", "a b")[0] == 2


def test_customers_import_and_export(db: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(HEADER + "\ndefault,C1,ACME,0899990988,1234,207,209,,,1,0\n")
    code, out = run("customers", "import", str(csv_path), "--db", db)
    assert code == 0 and "imported 1" in out
    code, out = run("customers", "export", "--db", db)
    assert out.splitlines() == [HEADER, "default,C1,ACME,+84899990988,1234,207,209,,,1,0"]
    target = tmp_path / "out.csv"
    assert run("customers", "export", "--db", db, "-o", str(target))[0] == 0
    assert target.read_text().splitlines()[1].startswith("default,C1,")


def test_bad_csv_imports_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(
        HEADER + "\ndefault,C1,A,0899990988,,q,,,,1,0\ndefault,C2,B,0899990989,,q|x,,,,1,0\n"
    )
    assert run("customers", "import", str(csv_path), "--db", db)[0] == 2
    err = capsys.readouterr().err
    assert f"{csv_path}:3:" in err and "destination1" in err and "nothing imported" in err
    assert run("customers", "export", "--db", db)[1].splitlines() == [HEADER]


def test_import_conflict_with_stored_customer_names_the_line(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "one.csv"
    first.write_text(HEADER + "\ndefault,C1,A,0899990988,,q,,,,1,0\n")
    assert run("customers", "import", str(first), "--db", db)[0] == 0
    second = tmp_path / "two.csv"
    second.write_text(
        HEADER + "\ndefault,C5,E,0899990977,,q,,,,0,0\ndefault,C2,B,0899990988,,q,,,,0,0\n"
    )
    assert run("customers", "import", str(second), "--db", db)[0] == 2
    err = capsys.readouterr().err
    assert f"{second}:3:" in err and "C1" in err
    assert "C5" not in run("customers", "export", "--db", db)[1]


def test_missing_file(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("customers", "import", "/nonexistent.csv", "--db", db)[0] == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_configuration_stops_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("deadline_ms = -5\n")
    assert run("check-config", "--config", str(config))[0] == 2
    assert "deadline_ms" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A real `fastagi-router serve` process on a free port."""
    port = _free_port()
    db = str(tmp_path / "served.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}
    env["FASTAGI_ROUTER_PROMPT_ATTEMPTS"] = "1"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastagi_router",
            "serve",
            "--db",
            db,
            "--agi",
            f"127.0.0.1:{port}",
            "--http",
            "127.0.0.1:0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.05)
        yield port, db
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        assert proc.returncode == 0, (tmp_path / "serve.log").read_text()


def test_call_against_a_served_router_sees_cli_changes(server: tuple[int, str]) -> None:
    port, db = server
    code, out = run("call", "0899990988", "--port", str(port), "--dtmf", "")
    assert code == 0
    assert "SMARTROUTING_STATUS=UNKNOWN" in out
    assert run("routes", "set", "0899990988", "104", "--db", db)[0] == 0
    code, out = run("call", "0899990988", "--port", str(port))
    assert code == 0
    assert "SMARTROUTING_STATUS=AGENT" in out and "SMARTROUTING_AGENT=104" in out
    assert "round trips: 1" in out


def test_call_with_nothing_listening(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out = run("call", "0899990988", "--port", str(_free_port()), "--timeout", "2")
    assert code == 1
    assert "no SMARTROUTING_STATUS" in capsys.readouterr().err


def test_routes_list_shows_origin_last_seen_and_expiry(db: str, tmp_path: Path) -> None:
    async def learn() -> None:
        store = await SQLiteStore.open(db)
        try:
            await store.learn_route("default", "0899990977", "+84899990977", "104")
            await store.learn_route("default", "0899990966", "+84899990966", "105")
        finally:
            await store.close()

    assert run("routes", "set", "0899990988", "101", "--db", db)[0] == 0
    asyncio.run(learn())
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE routes SET last_seen_at = '2020-01-01 00:00:00' WHERE number_key = ?",
            ("+84899990966",),
        )
    conn.close()
    code, out = run("routes", "list", "--db", db)
    assert code == 0
    lines = {line.split()[2]: line for line in out.splitlines()[1:]}
    assert lines["+84899990988"].split()[4:6] == ["manual", "-"]
    assert lines["+84899990977"].split()[4] == "learned"
    assert "expired" not in lines["+84899990977"]
    assert "2020-01-01 00:00:00 (expired)" in lines["+84899990966"]
    config = tmp_path / "no-window.toml"
    config.write_text("[learning]\naffinity_days = 0\n")
    out = run("routes", "list", "--db", db, "--config", str(config))[1]
    assert "expired" not in out
