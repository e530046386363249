"""The REST API over HTTPS (a certificate made in the test), the checks of its settings,
the certificate reloaded on SIGHUP, and the reverse-proxy example's target."""

from __future__ import annotations

import asyncio
import io
import os
import re
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from fastagi_router.api.server import HTTPServer
from fastagi_router.cli import main
from fastagi_router.config import HTTPSettings, load_settings
from fastagi_router.errors import ConfigError
from fastagi_router.metrics import Metrics
from fastagi_router.store import SQLiteStore
from tests.conftest import ADMIN_TOKEN, make_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_pair(ca: trustme.CA, directory: Path, name: str = "server") -> tuple[str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def https(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[tuple[HTTPServer, str]]:
    cert, key = write_pair(ca, tmp_path)
    settings = make_settings(tmp_path, http={"tls_cert": cert, "tls_key": key})
    store = await SQLiteStore.open(settings.db)
    server = HTTPServer(settings, store, Metrics())
    await server.start()
    try:
        yield server, f"https://127.0.0.1:{server.port}"
    finally:
        await server.stop()
        await store.close()


async def get(url: str, context: ssl.SSLContext | bool, path: str = "/v1/audit") -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + path, ssl=context, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_the_api_answers_over_https_with_a_verified_certificate(
    https: tuple[HTTPServer, str], ca: trustme.CA
) -> None:
    server, url = https
    assert server.scheme == "https"
    status, body = await get(url, client_context(ca))
    assert status == 200 and body["total"] == 0


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    https: tuple[HTTPServer, str],
) -> None:
    _, url = https
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await get(url, ssl.create_default_context())


async def test_plain_http_on_the_https_port_gets_nothing(https: tuple[HTTPServer, str]) -> None:
    _, url = https
    with pytest.raises(aiohttp.ClientError):
        await get(url.replace("https://", "http://"), False)


async def test_tls_1_2_is_the_oldest_version_served(
    https: tuple[HTTPServer, str], ca: trustme.CA
) -> None:
    """A TLS 1.2 client is served. Older versions cannot be tried from here: Python and
    OpenSSL refuse to speak them as a client, so the floor is read off the context."""
    server, url = https
    context = client_context(ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert (await get(url, context))[0] == 200
    assert server._tls is not None
    assert server._tls.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_sighup_reads_a_renewed_certificate_and_keeps_a_broken_one_out(
    https: tuple[HTTPServer, str], ca: trustme.CA, tmp_path: Path
) -> None:
    server, url = https
    http = server.settings.http
    context = client_context(ca)

    async def served_serial() -> bytes:
        """The certificate a new connection is served (DER)."""
        _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        return der

    first = await served_serial()
    renewed = ca.issue_cert("127.0.0.1")
    renewed.private_key_and_cert_chain_pem.write_to_path(http.tls_cert)
    renewed.private_key_pem.write_to_path(http.tls_key)
    server.apply(server.settings)
    second = await served_serial()
    assert second != first
    # A key that does not match (half-copied files): the running certificate stays.
    other = ca.issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(http.tls_key)
    server.apply(server.settings)
    assert await served_serial() == second
    assert (await get(url, context))[0] == 200


def test_cert_and_key_go_together() -> None:
    with pytest.raises(ConfigError, match=r"http.tls_cert is set but http.tls_key is not"):
        HTTPSettings(tls_cert="/x.pem")
    with pytest.raises(ConfigError, match=r"http.tls_key is set but http.tls_cert is not"):
        load_settings(environ={"FASTAGI_ROUTER_HTTP_TLS_KEY": "/k.pem"})


@pytest.mark.parametrize("fault", ["missing", "not_pem", "wrong_key"])
def test_unusable_files_stop_check_config_with_a_clear_error(
    tmp_path: Path, ca: trustme.CA, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(ca, tmp_path)
    if fault == "missing":
        cert = str(tmp_path / "nowhere.crt")
        expected = r"http.tls_cert: cannot read .*nowhere.crt: No such file"
    elif fault == "not_pem":
        Path(key).write_text("not a key\n")
        expected = r"http.tls_cert/http.tls_key: .* are not a PEM certificate and its private key"
    else:
        _, key = write_pair(ca, tmp_path, "other")
        expected = r"http.tls_cert/http.tls_key: .*(KEY_VALUES_MISMATCH|key values mismatch)"
    env = {"FASTAGI_ROUTER_HTTP_TLS_CERT": cert, "FASTAGI_ROUTER_HTTP_TLS_KEY": key}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = main(["check-config", "--db", str(tmp_path / "r.db")], out=io.StringIO())
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 2
    assert re.search(expected, capsys.readouterr().err), fault


def test_serve_refuses_to_start_on_a_missing_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    _, key = write_pair(ca, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}
    env.update(FASTAGI_ROUTER_HTTP_TLS_CERT=str(tmp_path / "gone.crt"))
    env.update(FASTAGI_ROUTER_HTTP_TLS_KEY=key)
    db = str(tmp_path / "r.db")
    done = subprocess.run(
        [sys.executable, "-m", "fastagi_router", "serve", "--db", db, "--agi", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "http.tls_cert: cannot read" in done.stderr


def test_the_nginx_example_proxies_to_the_default_listen_address() -> None:
    conf = (ROOT / "deploy" / "nginx" / "fastagi-router.conf").read_text()
    servers = re.findall(r"^\s*server\s+([0-9.:\[\]]+);", conf, re.MULTILINE)
    assert servers == [HTTPSettings().listen]
    upstream = re.search(r"upstream\s+(\w+)\s*\{", conf)
    assert upstream is not None
    targets = set(re.findall(r"proxy_pass\s+([^;]+);", conf))
    assert targets == {f"http://{upstream.group(1)}"}
    assert "ssl_protocols       TLSv1.2 TLSv1.3;" in conf
    # The import's limit: nginx must not refuse a CSV the router would take.
    size = re.search(r"client_max_body_size\s+(\d+)m;", conf)
    assert size is not None
    assert int(size.group(1)) * 1024 * 1024 >= HTTPSettings().max_import_bytes
