"""deploy/config.example.toml: written from the settings, complete, and loading to the defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from fastagi_router.config import ENV_ONLY, Settings, env_name, load_settings, setting_names
from fastagi_router.config_example import example_config, undocumented
from tests.test_cli import run

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "config.example.toml"
SETTING_LINE = re.compile(r"^#(?=[a-z_]+ = )", re.MULTILINE)


def uncommented(text: str) -> str:
    """The example with every setting line made active."""
    return SETTING_LINE.sub("", text)


def test_committed_example_is_what_the_command_writes() -> None:
    code, out = run("check-config", "--example")
    assert code == 0
    assert out == example_config()
    assert EXAMPLE.read_text(encoding="utf-8") == out, (
        "deploy/config.example.toml is stale: "
        "fastagi-router check-config --example > deploy/config.example.toml"
    )


def test_every_setting_has_a_meaning() -> None:
    assert undocumented() == []


def test_every_setting_appears_with_its_environment_variable() -> None:
    text = example_config()
    data = tomllib.loads(uncommented(text))
    active = {
        f"{section}.{key}" if isinstance(values, dict) and key else section
        for section, values in data.items()
        for key in (values if isinstance(values, dict) else [""])
    }
    # upstream.accounts is itself a table: it is one setting.
    for name in setting_names():
        assert env_name(name) in text, name
        if name not in ENV_ONLY:
            assert name in active, f"{name} is not in the example"


def test_the_example_as_written_loads_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(example_config(), encoding="utf-8")
    assert load_settings(str(path), environ={}) == Settings()


def test_the_example_uncommented_loads_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(uncommented(example_config()), encoding="utf-8")
    assert load_settings(str(path), environ={}) == Settings()


def test_check_config_file_validates_without_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[agi]\nlisten = "0.0.0.0:4573"\n', encoding="utf-8")
    code, out = run("check-config", str(path))
    assert code == 0
    assert "0.0.0.0:4573" in out


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[agi]\nlisten = 4573\n", "agi.listen"),
        ('[agi]\nlisten = "nowhere"\n', "agi.listen"),
        ("[prompt]\nattempts = 99\n", "prompt.attempts"),
        ("[upstream]\nfresh_ttl_s = 5000\n", "upstream.fresh_ttl_s"),
        ("deadline = 5\n", "deadline"),
        ("[agi\n", "not valid TOML"),
        ('[api]\ntoken = "x"\n', "api.token"),
    ],
)
def test_check_config_names_the_bad_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert run("check-config", str(path))[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("fastagi-router: error") and named in err
    assert len(err.strip().splitlines()) == 1


def test_check_config_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check-config", "/nonexistent/config.toml")[0] == 2
    assert "cannot read configuration file /nonexistent/config.toml" in capsys.readouterr().err
