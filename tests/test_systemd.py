"""deploy/systemd/fastagi-router.service: read as systemd reads it, and checked.

The unit is parsed here (sections, repeated keys kept in order) and its options compared
with what the router needs; `systemd-analyze verify` also checks it where it is installed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastagi_router.cli import build_parser
from fastagi_router.config import load_settings

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "fastagi-router.service"
SYSUSERS = REPO / "deploy" / "systemd" / "fastagi-router.sysusers"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order; continuation lines
    (a trailing backslash) joined, comments dropped."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        logical.append(line)
    for line in logical:
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, eq, value = line.partition("=")
        assert eq and current is not None, f"not 'Key=value' in a section: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def values(unit: dict[str, list[tuple[str, str]]], key: str, section: str = "Service") -> list[str]:
    return [v for k, v in unit[section] if k == key]


def one(unit: dict[str, list[tuple[str, str]]], key: str, section: str = "Service") -> str:
    found = values(unit, key, section)
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


def test_parser_reads_sections_repeats_and_continuations() -> None:
    text = "[A]\n# c\nX=1\nX=2\\\n  3\n[B]\nY=\n"
    assert parse_unit(text) == {"A": [("X", "1"), ("X", "2 3")], "B": [("Y", "")]}


def test_sections(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one(unit, "WantedBy", "Install") == "multi-user.target"
    assert "network-online.target" in one(unit, "After", "Unit")


def test_exec_start_runs_serve(unit: dict[str, list[tuple[str, str]]]) -> None:
    argv = shlex.split(one(unit, "ExecStart"))
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "fastagi-router"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert one(unit, "Type") in ("exec", "simple")


def test_reload_sends_sighup(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert shlex.split(one(unit, "ExecReload")) == ["/bin/kill", "-HUP", "$MAINPID"]


def test_configuration_file_and_store(unit: dict[str, list[tuple[str, str]]]) -> None:
    env = dict(v.split("=", 1) for v in values(unit, "Environment"))
    assert env["FASTAGI_ROUTER_CONFIG"] == "/etc/fastagi-router/config.toml"
    # Only names the router knows (load_settings refuses the others).
    load_settings(environ={k: v for k, v in env.items() if k != "FASTAGI_ROUTER_CONFIG"})
    state = one(unit, "StateDirectory")
    assert one(unit, "WorkingDirectory") == f"/var/lib/{state}"


def test_dedicated_user_and_sysusers(unit: dict[str, list[tuple[str, str]]]) -> None:
    user = one(unit, "User")
    assert user not in ("root", "0") and one(unit, "Group") == user
    entries = [line.split() for line in SYSUSERS.read_text().splitlines() if line[:2] == "u "]
    assert [e[1] for e in entries] == [user]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallArchitectures", "native"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
    ],
)
def test_hardening(unit: dict[str, list[tuple[str, str]]], key: str, value: str) -> None:
    assert one(unit, key) == value


def test_system_call_filter(unit: dict[str, list[tuple[str, str]]]) -> None:
    filters = values(unit, "SystemCallFilter")
    assert filters[0] == "@system-service"
    # setrlimit (in @resources) stays allowed: the router raises its open-file limit.
    assert all("@resources" not in f for f in filters[1:])


def test_limits_fit_the_router(unit: dict[str, list[tuple[str, str]]]) -> None:
    settings = load_settings(environ={})
    assert int(one(unit, "LimitNOFILE")) > settings.agi.max_sessions * 2
    # The drain after SIGTERM (serving.py: deadline + 3 reply graces, 2 s more with
    # workers) ends before systemd's SIGKILL.
    drain = settings.deadline_ms / 1000 + 3 * settings.agi.reply_grace_ms / 1000 + 2
    assert float(one(unit, "TimeoutStopSec")) >= 2 * drain
    assert one(unit, "KillMode") == "mixed"
    assert one(unit, "Restart") == "on-failure"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify wants ExecStart's program to exist: point it at this installation's.
    program = Path(sys.executable).parent / "fastagi-router"
    if not program.exists():
        pytest.skip("no fastagi-router script next to this Python")
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/fastagi-router/bin/fastagi-router", str(program)
    )
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [analyze, "verify", str(copy)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    problems = [line for line in proc.stderr.splitlines() if UNIT.name in line]
    assert not problems, proc.stderr
