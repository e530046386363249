"""Authentication and authorisation: bearer tokens kept as hashes, accounts, read/write."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.api.keys import TOKENS
from fastagi_router.api.tokens import TokenSet, digest, parse_entry
from fastagi_router.cli import main
from fastagi_router.config import load_settings
from fastagi_router.errors import ConfigError
from tests.api.conftest import Api
from tests.conftest import CL0000_TOKEN, READER_TOKEN

ROUTE = {"phone_number": "0899990988", "agent": "104"}


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, False),
        ("", False),
        ("Bearer not-a-configured-token-000", True),
        ("Bearer", True),
        ("Basic dXNlcjpwYXNz", True),
        ("Bearer test-admin-token-0123456789 extra", True),
        ("Bearer tést-admin", True),
    ],
)
async def test_missing_or_bad_token_is_401_with_a_challenge(
    api: Api, header: str | None, error: bool
) -> None:
    headers = {} if header is None else {"Authorization": header}
    reply = await api.get("/v1/smartrouting", token=None, headers=headers)
    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"
    challenge = reply.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="fastagi-router"')
    assert ('error="invalid_token"' in challenge) is error


async def test_scheme_is_case_insensitive_and_spaces_are_tolerated(api: Api) -> None:
    for header in ("bearer test-admin-token-0123456789", "Bearer   test-admin-token-0123456789 "):
        reply = await api.get("/v1/smartrouting", token=None, headers={"Authorization": header})
        assert reply.status == 200


async def test_a_read_only_token_reads_but_does_not_write(api: Api) -> None:
    assert (await api.get("/v1/smartrouting", token=READER_TOKEN)).status == 200
    for method, path, body in [
        ("POST", "/v1/smartrouting", ROUTE),
        ("DELETE", "/v1/smartrouting/1", None),
        ("PUT", "/v1/customers/C1", {}),
        ("POST", "/v1/customers", {"customer_id": "C1"}),
        ("DELETE", "/v1/customers/C1", None),
    ]:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        reply = await api.call(method, path, token=READER_TOKEN, **kwargs)
        assert reply.status == 403, (method, path)
        assert reply.error["code"] == "forbidden"
    reply = await api.post("/v1/customers/import", token=READER_TOKEN, data=b"")
    assert reply.status == 403


async def test_a_token_limited_to_accounts(api: Api) -> None:
    reply = await api.post("/v1/smartrouting", token=CL0000_TOKEN, json=ROUTE)
    assert reply.status == 403  # the default account
    assert reply.error["field"] == "account"
    reply = await api.post(
        "/v1/smartrouting", token=CL0000_TOKEN, params={"account": "CL0000"}, json=ROUTE
    )
    assert reply.status == 200
    listed = await api.get("/v1/smartrouting", token=CL0000_TOKEN, params={"account": "CL0000"})
    assert listed.json["total"] == 1
    for path in ("/v1/smartrouting", "/v1/smartrouting/1", "/v1/customers", "/v1/customers/C1"):
        assert (await api.get(path, token=CL0000_TOKEN)).status == 403, path
    reply = await api.get("/v1/customers", token=CL0000_TOKEN, params={"account": "CL0000"})
    assert reply.status == 200


async def test_probes_metrics_and_the_document_need_no_token(api: Api) -> None:
    assert (await api.get("/healthz", token=None)).json == {"status": "alive"}
    assert (await api.get("/readyz", token=None)).json == {"status": "ready"}
    assert (await api.get("/openapi.json", token=None)).json["openapi"] == "3.1.0"
    reply = await api.get("/metrics", token=None)
    assert reply.status == 200 and reply.content_type == "text/plain"


async def test_readyz_says_when_the_store_is_gone(api: Api) -> None:
    await api.store.close()
    reply = await api.get("/readyz", token=None)
    assert reply.status == 503 and reply.error["code"] == "store_unavailable"
    assert (await api.get("/healthz", token=None)).status == 200
    reply = await api.get("/v1/smartrouting")
    assert reply.status == 503 and reply.error["code"] == "store_unavailable"


async def test_without_a_configured_token_one_is_generated_and_logged_once(
    api_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastagi_router.api")
    api = await api_factory(api={"tokens": ()})
    logged = [r.getMessage() for r in caplog.records if "generated" in r.getMessage()]
    assert len(logged) == 1
    assert "FASTAGI_ROUTER_API_TOKEN" in logged[0] and "api.tokens" in logged[0]
    token = re.search(r": ([A-Za-z0-9_-]{40,}) --", logged[0])
    assert token is not None
    reply = await api.post("/v1/smartrouting", token=token.group(1), json=ROUTE)
    assert reply.status == 200
    assert (await api.get("/v1/smartrouting", token="test-admin-token-0123456789")).status == 401
    # Only its hash is kept.
    assert api.app is not None
    tokens = api.app[TOKENS]
    assert tokens.find(token.group(1)) is not None
    assert token.group(1) not in repr(vars(tokens))
    assert digest(token.group(1)) in repr(vars(tokens))


async def test_the_environment_token_writes_to_every_account(api_factory: Any) -> None:
    secret = "an-environment-token-0123456789"
    settings = load_settings(environ={"FASTAGI_ROUTER_API_TOKEN": secret})
    assert settings.api.token == f"sha256:{digest(secret)}"
    assert secret not in repr(settings)
    api = await api_factory(api={"token": secret, "tokens": ()})
    for account in ("default", "CL0000", "anything"):
        reply = await api.post(
            "/v1/smartrouting", token=secret, params={"account": account}, json=ROUTE
        )
        assert reply.status == 200


# -- the token settings ---------------------------------------------------------------------


def test_token_entries_in_toml_and_in_the_environment(tmp_path: Path) -> None:
    a, b = digest("first-token-0123456789"), digest("second-token-0123456789")
    config = tmp_path / "router.toml"
    config.write_text(
        "[api]\ntokens = [\n"
        f'  "sha256:{a} accounts=* write name=crm",\n'
        f'  "sha256:{b} accounts=CL0000+CL0001",\n'
        "]\n"
    )
    from_file = load_settings(str(config), environ={}).api.tokens
    from_env = load_settings(
        environ={
            "FASTAGI_ROUTER_API_TOKENS": f"sha256:{a} accounts=* write name=crm,"
            f" sha256:{b} accounts=CL0000+CL0001"
        }
    ).api.tokens
    assert from_file == from_env
    crm, limited = (parse_entry(e) for e in from_file)
    assert (crm.accounts, crm.write, crm.name) == (None, True, "crm")
    assert (limited.accounts, limited.write) == (frozenset({"CL0000", "CL0001"}), False)
    assert limited.may_use("CL0001") and not limited.may_use("default")


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("my-clear-token-0123456789", "sha256"),
        ("sha256:abcd", "sha256"),
        (f"sha256:{'a' * 64} accounts=", "accounts"),
        (f"sha256:{'a' * 64} accounts=bad+na me", "unknown word"),
        (f"sha256:{'a' * 64} accounts=a&b", "account"),
        (f"sha256:{'a' * 64} admin", "unknown word"),
        (f"sha256:{'a' * 64} read write", "read and write"),
        (f"sha256:{'a' * 64} name=x name=y", "twice"),
    ],
)
def test_bad_token_entries_stop_start_up(entry: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"api.tokens.*{named}"):
        load_settings(environ={"FASTAGI_ROUTER_API_TOKENS": entry})


def test_a_token_listed_twice_is_refused() -> None:
    entry = f"sha256:{'a' * 64}"
    with pytest.raises(ConfigError, match="twice"):
        load_settings(environ={"FASTAGI_ROUTER_API_TOKENS": f"{entry},{entry} write"})


def test_a_clear_token_is_not_read_from_a_file(tmp_path: Path) -> None:
    config = tmp_path / "router.toml"
    config.write_text('[api]\ntoken = "my-clear-token-0123456789"\n')
    with pytest.raises(ConfigError, match="environment only"):
        load_settings(str(config), environ={})
    with pytest.raises(ConfigError, match=r"api\.token"):
        load_settings(environ={}, overrides={"api.token": "my-clear-token-0123456789"})


@pytest.mark.parametrize("value", ["short", "has space in it 0123", "quote'token-0123456789"])
def test_a_weak_or_malformed_environment_token_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.token") as caught:
        load_settings(environ={"FASTAGI_ROUTER_API_TOKEN": value})
    assert value not in str(caught.value)


def test_token_new_prints_a_token_and_its_entry() -> None:
    out = io.StringIO()
    assert (
        main(["token", "new", "--write", "--accounts", "CL0000+CL0001", "--name", "crm"], out) == 0
    )
    token_line, entry_line = out.getvalue().splitlines()
    token = token_line.removeprefix("token: ")
    entry = entry_line.removeprefix("api.tokens entry: ")
    spec = parse_entry(entry)
    assert spec.sha256 == digest(token) and spec.write and spec.name == "crm"
    assert spec.accounts == frozenset({"CL0000", "CL0001"})
    assert TokenSet([spec]).find(token) is spec


def test_token_hash_reads_a_token_or_a_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "an-existing-token-0123456789"
    for given in (secret, f"sha256:{digest(secret).upper()}"):
        monkeypatch.setattr("sys.stdin", io.StringIO(given + "\n"))
        out = io.StringIO()
        assert main(["token", "hash", "--accounts", "CL0000"], out) == 0
        spec = parse_entry(out.getvalue().strip().removeprefix("api.tokens entry: "))
        assert spec.sha256 == digest(secret) and not spec.write
        assert spec.accounts == frozenset({"CL0000"})
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["token", "hash"], io.StringIO()) == 2
