"""``erase`` and ``audit list``, and the audit entries of the other writing commands."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from fastagi_router import access_cli
from fastagi_router.csvio import COLUMNS
from tests.conftest import run_cli as run

USER = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


def audit_rows(db: str, *filters: str) -> list[list[str]]:
    code, out = run("audit", "list", "--db", db, *filters)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("at (UTC)")
    return [line.split() for line in lines[1:]]


def test_the_writing_commands_are_audited_with_the_os_user(db: str, tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text(",".join(COLUMNS) + "\nCL0000,C1,ACME,0899990977,,207,,,,0,0\n")
    assert run("routes", "set", "0899990988", "104", "--db", db)[0] == 0
    assert run("routes", "delete", "0899990988", "--db", db)[0] == 0
    assert run("routes", "delete", "0899990988", "--db", db)[0] == 1  # nothing: no entry
    assert run("customers", "import", str(csv), "--db", db)[0] == 0
    assert run("cache", "purge", "--all", "--db", db)[0] == 0  # empty cache: no entry
    rows = audit_rows(db)
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        (USER, "customers.import", "CL0000", "-"),
        (USER, "route.delete", "default", "+84899990988"),
        (USER, "route.create", "default", "+84899990988"),
    ]
    assert [r[3] for r in audit_rows(db, "--action", "route.create")] == ["route.create"]
    assert audit_rows(db, "--account", "CL0001") == []
    assert len(audit_rows(db, "--limit", "1")) == 1
    assert audit_rows(db, "--since", "2999-01-01") == []
    assert len(audit_rows(db, "--since", "2000-01-01", "--actor", USER)) == 3


def test_erase_prints_what_it_removed_and_exits_0_when_nothing_was_stored(db: str) -> None:
    run("routes", "set", "0899990988", "104", "--db", db, "--account", "CL0000")
    code, out = run("erase", "+84 899 990 988", "--db", db)
    assert code == 0
    assert out == (
        "erased +84899990988 in every account: routes=1 customer_numbers=0 customers=0 "
        "cache_entries=0 audit_entries=1\n"
    )
    code, out = run("erase", "0899990988", "--account", "CL0000", "--db", db)
    assert code == 0 and "in account CL0000: routes=0" in out
    rows = audit_rows(db)
    assert [r[3] for r in rows] == ["caller.erase", "caller.erase", "route.create"]
    assert rows[2][5] == "[erased]"


@pytest.mark.parametrize(
    "argv",
    [
        ["erase", "anonymous"],
        ["erase", "0899990988", "--account", "bad account"],
        ["audit", "list", "--since", "yesterday"],
        ["audit", "list", "--limit", "0"],
        ["audit", "list", "--account", "a b"],
    ],
)
def test_bad_input_exits_2(db: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*argv, "--db", db)[0] == 2
    assert "fastagi-router: error" in capsys.readouterr().err


def test_under_sudo_the_user_who_ran_sudo_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "alice")
    assert access_cli.cli_actor() == "cli:root (sudo alice)"
    monkeypatch.delenv("SUDO_USER")
    assert access_cli.cli_actor() == "cli:root"
    # A uid without a passwd entry (a container's arbitrary uid) is named by its number.
    monkeypatch.setattr(os, "getuid", lambda: 4242424)
    assert access_cli.cli_actor() == "cli:uid4242424"
