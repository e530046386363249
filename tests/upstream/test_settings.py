"""The [upstream] settings: two environment variables switch it on; mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastagi_router.config import load_settings
from fastagi_router.errors import ConfigError

URL = "FASTAGI_ROUTER_UPSTREAM_URL"
TOKEN = "FASTAGI_ROUTER_UPSTREAM_TOKEN"


def test_off_by_default() -> None:
    assert not load_settings(environ={}).upstream.enabled


def test_url_and_token_alone_switch_it_on_with_defaults() -> None:
    s = load_settings(environ={URL: "https://clients.example.com", TOKEN: "t0k3n"}).upstream
    assert s.enabled
    assert (s.number_param, s.code_param) == ("number", "code")
    assert (s.vip_field, s.oncall_field) == ("vip", "astreinte")
    assert s.number_format == "international"


def test_token_is_never_printed() -> None:
    settings = load_settings(environ={URL: "https://clients.example.com", TOKEN: "t0k3n-secret"})
    assert "t0k3n-secret" not in repr(settings)
    assert "t0k3n-secret" not in str(settings)


def test_account_map_from_environment_and_file(tmp_path: Path) -> None:
    env = {
        URL: "http://127.0.0.1:1",
        TOKEN: "t",
        "FASTAGI_ROUTER_UPSTREAM_ACCOUNTS": "19001=CL1, 19002 = CL2",
    }
    assert load_settings(environ=env).upstream.accounts == {"19001": "CL1", "19002": "CL2"}
    path = tmp_path / "r.toml"
    path.write_text(
        '[upstream]\nurl = "https://x.example"\ntoken = "t"\n'
        '[upstream.accounts]\n"0287654321" = "CL0000"\n'
    )
    assert load_settings(str(path), environ={}).upstream.accounts == {"0287654321": "CL0000"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({URL: "https://x.example"}, "upstream.token"),
        ({TOKEN: "t"}, "upstream.token"),
        ({URL: "ftp://x.example", TOKEN: "t"}, "upstream.url"),
        ({URL: "x.example", TOKEN: "t"}, "upstream.url"),
        ({URL: "https://u:p@x.example", TOKEN: "t"}, "upstream.url"),
        ({URL: "https://x.example/?a=1", TOKEN: "t"}, "upstream.url"),
        ({URL: "https://x.example", TOKEN: "two words"}, "upstream.token"),
        ({"FASTAGI_ROUTER_UPSTREAM_NUMBER_FORMAT": "dots"}, "upstream.number_format"),
        ({"FASTAGI_ROUTER_UPSTREAM_NUMBER_PARAM": "a b"}, "upstream.number_param"),
        ({"FASTAGI_ROUTER_UPSTREAM_ACCOUNT": "bad account"}, "upstream.account"),
        ({"FASTAGI_ROUTER_UPSTREAM_ACCOUNTS": "19001=bad account"}, r"upstream.accounts\[19001\]"),
        ({"FASTAGI_ROUTER_UPSTREAM_ACCOUNTS": "19001"}, "UPSTREAM_ACCOUNTS"),
        ({"FASTAGI_ROUTER_UPSTREAM_TIMEOUT_MS": "0"}, "upstream.timeout_ms"),
        ({"FASTAGI_ROUTER_UPSTREAM_FRESH_TTL_S": "7200"}, "upstream.fresh_ttl_s"),
        ({"FASTAGI_ROUTER_UPSTREAM_MAX_STALE_S": "10"}, "upstream.max_stale_s"),
        ({"FASTAGI_ROUTER_UPSTREAM_MARGIN_MS": "2000"}, "upstream.margin_ms"),
        ({"FASTAGI_ROUTER_UPSTREAM_BREAKER_FAILURES": "0"}, "upstream.breaker_failures"),
    ],
)
def test_mistakes_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(environ=env)
