"""Settings: defaults < file < environment < command line, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastagi_router.config import env_name, load_settings, setting_names
from fastagi_router.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "router.toml"
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    s = load_settings(environ={})
    assert s.db == "fastagi-router.db"
    assert s.agi.listen == "127.0.0.1:4573"
    assert s.deadline_ms == 2000
    assert s.prompt.attempts == 3
    assert "127.0.0.0/8" in s.agi.allow


def test_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, 'db = "file.db"\ndeadline_ms = 1000\n[prompt]\nattempts = 2\n')
    env = {"FASTAGI_ROUTER_DEADLINE_MS": "1500", "FASTAGI_ROUTER_PROMPT_ATTEMPTS": "4"}
    s = load_settings(path, environ=env, overrides={"prompt.attempts": "5"})
    assert (s.db, s.deadline_ms, s.prompt.attempts) == ("file.db", 1500, 5)


def test_db_resolution_order(tmp_path: Path) -> None:
    path = write(tmp_path, 'db = "from-file.db"\n')
    assert load_settings(path, environ={}).db == "from-file.db"
    env = {"FASTAGI_ROUTER_DB": "from-env.db"}
    assert load_settings(path, environ=env).db == "from-env.db"
    assert load_settings(path, environ=env, overrides={"db": "flag.db"}).db == "flag.db"


def test_issue_environment_variables() -> None:
    s = load_settings(
        environ={
            "FASTAGI_ROUTER_DEFAULT_REGION": "FR",
            "FASTAGI_ROUTER_DEFAULT_QUEUES": "support, overflow",
            "FASTAGI_ROUTER_DEADLINE_MS": "750",
        }
    )
    assert s.default_region == "FR"
    assert s.default_queues == ("support", "overflow")
    assert s.deadline_ms == 750


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[agi]\nmax_sessions = 7\n")
    assert load_settings(environ={"FASTAGI_ROUTER_CONFIG": path}).agi.max_sessions == 7


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("colour = 1\n", {}, "colour"),
        ("[agi]\nlisten_here = 1\n", {}, "agi.listen_here"),
        ('deadline_ms = "soon"\n', {}, "deadline_ms"),
        ("", {"FASTAGI_ROUTER_DEADLINE_MS": "soon"}, "deadline_ms"),
        ("", {"FASTAGI_ROUTER_DEADLNE_MS": "1"}, "FASTAGI_ROUTER_DEADLNE_MS"),
        ("", {"FASTAGI_ROUTER_DEADLINE_MS": "0"}, "deadline_ms"),
        ("", {"FASTAGI_ROUTER_DEFAULT_REGION": "XX"}, "default_region"),
        ("", {"FASTAGI_ROUTER_DEFAULT_QUEUES": "a&b"}, "default_queues"),
        ("", {"FASTAGI_ROUTER_AGI_LISTEN": "nowhere"}, "agi.listen"),
        ("", {"FASTAGI_ROUTER_AGI_ALLOW": "10.0.0.0/8,banana"}, "agi.allow"),
        ('[prompt]\nfile = "two words"\n', {}, "prompt.file"),
        ("deadline_ms = [\n", {}, "TOML"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, env: dict[str, str], named: str) -> None:
    path = write(tmp_path, text) if text else None
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(path, environ=env)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings(str(tmp_path / "nope.toml"), environ={})


def test_every_setting_has_an_environment_name() -> None:
    names = setting_names()
    assert env_name("agi.listen") == "FASTAGI_ROUTER_AGI_LISTEN"
    assert len({env_name(n) for n in names}) == len(names)
