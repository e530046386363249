"""``fastagi-router healthcheck``: is the router on this host serving?

For container and service-manager health checks: it connects to the FastAGI port (to
127.0.0.1 or ::1 when the router listens on every interface) and, when the REST API is
enabled, asks ``/readyz`` (the store answers), over HTTPS when ``http.tls_cert`` is set.
Each step has a short timeout, so that the check never hangs; it opens no store and
starts nothing.

The FastAGI connection is closed before any header is sent: the router counts it as a
closed connection, not as a call.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from fastagi_router.config import Settings, parse_hostport


@dataclass(frozen=True, slots=True)
class Health:
    """The outcome: ``ok`` and a one-line reason."""

    ok: bool
    reason: str


def _local(host: str) -> str:
    """The address to reach a listener bound to ``host`` from this host."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - a listen address, not a bind
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _target(listen: str, name: str) -> tuple[str, int]:
    host, port = parse_hostport(listen, name)
    return _local(host), port


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check(settings: Settings, timeout: float = 2.0) -> Health:
    """Return whether the router configured by ``settings`` answers on this host."""
    host, port = _target(settings.agi.listen, "agi.listen")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Health(False, f"FastAGI {_show(host, port)}: {reason}")
    if not settings.http.enabled:
        return Health(True, f"FastAGI {_show(host, port)} accepts connections")
    http_host, http_port = _target(settings.http.listen, "http.listen")
    connection: http.client.HTTPConnection
    if settings.http.tls_cert:
        # The router's own certificate, asked over loopback: it names the public host, not
        # 127.0.0.1, and may come from a private CA. What is checked here is that the
        # server answers, not who it is, so the certificate is not verified.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        where = f"https://{_show(http_host, http_port)}/readyz"
        connection = http.client.HTTPSConnection(
            http_host, http_port, timeout=timeout, context=context
        )
    else:
        where = f"http://{_show(http_host, http_port)}/readyz"
        connection = http.client.HTTPConnection(http_host, http_port, timeout=timeout)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        response.read(4096)
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Health(False, f"{where}: {reason}")
    finally:
        connection.close()
    if response.status != 200:
        return Health(False, f"{where}: HTTP {response.status} {response.reason}")
    return Health(True, f"FastAGI {_show(host, port)} accepts connections; {where} ready")
