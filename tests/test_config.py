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


def test_manager_settings_from_the_environment_switch_learning_on() -> None:
    s = load_settings(
        environ={
            "FASTAGI_ROUTER_AMI_HOST": "pbx.example.net",
            "FASTAGI_ROUTER_AMI_PORT": "5039",
            "FASTAGI_ROUTER_AMI_USERNAME": "router",
            "FASTAGI_ROUTER_AMI_SECRET": "s3cret",
        }
    )
    assert s.ami.enabled
    assert (s.ami.host, s.ami.port, s.ami.username, s.ami.secret) == (
        "pbx.example.net",
        5039,
        "router",
        "s3cret",
    )
    assert not load_settings(environ={}).ami.enabled


def test_the_manager_secret_is_never_printed() -> None:
    s = load_settings(
        environ={
            "FASTAGI_ROUTER_AMI_HOST": "pbx",
            "FASTAGI_ROUTER_AMI_USERNAME": "router",
            "FASTAGI_ROUTER_AMI_SECRET": "hunter2-secret",
        }
    )
    assert "hunter2-secret" not in repr(s)
    assert "router" in repr(s)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"FASTAGI_ROUTER_AMI_HOST": "pbx"}, "ami.username"),
        ({"FASTAGI_ROUTER_AMI_PORT": "0"}, "ami.port"),
        ({"FASTAGI_ROUTER_AMI_PING_TIMEOUT_MS": "0"}, "ami.ping_timeout_ms"),
        (
            {
                "FASTAGI_ROUTER_AMI_BACKOFF_INITIAL_MS": "5000",
                "FASTAGI_ROUTER_AMI_BACKOFF_MAX_MS": "100",
            },
            "ami.backoff_max_ms",
        ),
        ({"FASTAGI_ROUTER_LEARNING_SOURCES": "queue,fax"}, "learning.sources"),
        ({"FASTAGI_ROUTER_LEARNING_MIN_TALK_SECONDS": "-1"}, "learning.min_talk_seconds"),
        ({"FASTAGI_ROUTER_LEARNING_AFFINITY_DAYS": "-3"}, "learning.affinity_days"),
        (
            {"FASTAGI_ROUTER_LEARNING_ACCOUNT_VARIABLE": "ROUTER ACCOUNT"},
            "learning.account_variable",
        ),
        ({"FASTAGI_ROUTER_LEARNING_AGENT_PATTERN": "PJSIP/(["}, "learning.agent_pattern"),
        ({"FASTAGI_ROUTER_LEARNING_AGENT_PATTERN": "PJSIP/.*"}, "learning.agent_pattern"),
        ({"FASTAGI_ROUTER_LEARNING_AGENT_FROM": "caller"}, "learning.agent_from"),
        ({"FASTAGI_ROUTER_AVAILABILITY_TEMPLATE": "PJSIP/104"}, "availability.template"),
        (
            {"FASTAGI_ROUTER_AVAILABILITY_ROUTE_STATES": "NOT_INUSE,FREE"},
            "availability.route_states",
        ),
    ],
)
def test_bad_learning_and_availability_settings_name_themselves(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(environ=environ)


def test_a_secret_with_a_line_break_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[ami]\nhost = "pbx"\nusername = "r"\nsecret = "a\\r\\nAction: Originate"\n'
    )
    with pytest.raises(ConfigError, match=r"ami\.secret"):
        load_settings(path, environ={})


def test_learning_and_availability_from_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[learning]\nqueues = ['support', 'sales']\nmin_talk_seconds = 20\n"
        "[availability]\nenabled = true\ntemplate = '${EXTENSION_STATE({agent}@agents)}'\n"
        "route_states = ['not_inuse', 'EMPTY']\n",
    )
    s = load_settings(path, environ={})
    assert s.learning.queues == ("support", "sales")
    assert s.learning.min_talk_seconds == 20
    assert s.availability.enabled
    assert s.availability.expression("104") == "${EXTENSION_STATE(104@agents)}"
    assert load_settings(environ={}).availability.expression("104") == "${DEVICE_STATE(PJSIP/104)}"
