"""`HTTPServer`: runs the REST API application on ``http.listen`` beside the FastAGI server.

With ``http.tls_cert`` and ``http.tls_key`` it serves HTTPS (TLS 1.2 or later), the files
read at start-up and again on SIGHUP (a renewed certificate applies to new connections).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from fastagi_router.api.app import create_app
from fastagi_router.api.keys import TOKENS
from fastagi_router.api.tokens import token_set
from fastagi_router.config import HTTPSettings, Settings, parse_hostport
from fastagi_router.errors import ConfigError
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics
from fastagi_router.store import Store

log = logging.getLogger("fastagi_router.api")

#: Longest wait for requests in progress when the server stops.
SHUTDOWN_TIMEOUT = 5.0
#: Unparsable requests logged per second at most; the rest are counted in the next line.
BAD_REQUESTS_LOGGED = 10


class BadRequestLines(logging.Filter):
    """Turns aiohttp's ERROR with a traceback for a request it cannot parse (any client can
    send one, as often as it likes) into one WARNING line, at most `BAD_REQUESTS_LOGGED` a
    second. Errors that are not about the request's bytes pass unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self._second = 0
        self._logged = 0
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite or drop ``record`` when it is about an unparsable request."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._logged = second, 0
        if self._logged >= BAD_REQUESTS_LOGGED:
            self._left_out += 1
            return False
        self._logged += 1
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        more = f" ({self._left_out} more left out of the log)" if self._left_out else ""
        self._left_out = 0
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "unparsable HTTP request from %s: %s%s"
        record.args = (sanitize(peer, 60), sanitize(str(exc.message).split("\n", 1)[0], 80), more)
        record.exc_info = record.exc_text = None
        return True


#: aiohttp's per-connection logger for the REST API, with `BadRequestLines`.
_server_log = logging.getLogger("fastagi_router.api.http")
_server_log.addFilter(BadRequestLines())


def tls_context(http: HTTPSettings) -> ssl.SSLContext | None:
    """Return the server's TLS context for ``http.tls_cert``/``http.tls_key`` (None without
    them). Raises `ConfigError` naming the setting when a file cannot be read, is not PEM,
    or the key does not match the certificate."""
    if not http.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, http)
    return context


def _load_chain(context: ssl.SSLContext, http: HTTPSettings) -> None:
    for name, path in (("http.tls_cert", http.tls_cert), ("http.tls_key", http.tls_key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from exc
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"http.tls_cert/http.tls_key: {http.tls_cert} and {http.tls_key} are not a PEM "
            f"certificate and its private key ({exc.reason or exc})"
        ) from exc


class HTTPServer:
    """The REST API's listener: `start`, `stop`, and the address actually bound."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.app = create_app(settings, store=store, metrics=metrics)
        self._runner: web.AppRunner | None = None
        self._tls: ssl.SSLContext | None = None

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self._tls is not None else "http"

    async def start(self, sock: socket.socket | None = None) -> None:
        """Start listening on ``http.listen`` (or on ``sock``). Raises `OSError` when the
        address cannot be bound, `ConfigError` when the TLS files are unusable."""
        self._tls = tls_context(self.settings.http)
        runner = web.AppRunner(self.app, shutdown_timeout=SHUTDOWN_TIMEOUT, logger=_server_log)
        await runner.setup()
        try:
            site: web.BaseSite
            if sock is not None:
                site = web.SockSite(runner, sock, ssl_context=self._tls)
            else:
                host, port = parse_hostport(self.settings.http.listen, "http.listen")
                site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=self._tls)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("REST API listening on %s (%s)", ", ".join(self.addresses()), self.scheme.upper())

    def addresses(self) -> list[str]:
        """The ``host:port`` addresses bound."""
        if self._runner is None:
            return []
        return [f"{a[0]}:{a[1]}" for a in self._runner.addresses if isinstance(a, tuple)]

    @property
    def port(self) -> int:
        """The first bound port (useful when listening on port 0)."""
        assert self._runner is not None
        port: int = self._runner.addresses[0][1]
        return port

    def apply(self, settings: Settings) -> None:
        """Accept the tokens of ``settings`` from the next request on (a reload). Without any
        configured token, the token generated at start-up stays. When serving TLS, read the
        certificate and key files again (the running ones: the paths change on restart);
        files that do not load are logged and the certificate in use is kept."""
        tokens = token_set(settings.api.token, settings.api.tokens)
        if len(tokens):
            self.app[TOKENS].replace(tokens)
        if self._tls is not None:
            try:
                # A scratch context first: a key that does not match would otherwise leave
                # the live context with the new certificate and the old key.
                tls_context(self.settings.http)
                _load_chain(self._tls, self.settings.http)
            except ConfigError as exc:
                log.error("SIGHUP: keeping the certificate in use: %s", exc)
            else:
                log.info("SIGHUP: TLS certificate reloaded from %s", self.settings.http.tls_cert)
        self.settings = settings

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish (a few seconds at most)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
