"""The ways the upstream customer API fails, each served on 127.0.0.1 for a real router.

Shared by ``tests/upstream/test_faults.py`` (a few calls per mode, asserted) and
``bench/upstream_faults.py`` (many calls per mode, measured). `FaultMode.serve` yields the
base URL to give the router as ``upstream.url``; every caller number `number(n)` is a
customer of the API when the API answers at all, so a good answer routes ``CUSTOMER``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.upstream import BlackHole, FakeUpstream, Fault

ACCOUNT = "CL0000"
#: Bytes where an HTTP answer should be.
GARBAGE = b"\x00\xff\x13SSH-2.0-OpenSSH_9.6\r\n\x89PNG\r\n\x1a\n" + bytes(range(256))
HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


def number(n: int) -> str:
    """The n-th caller number (French, as the router's ``default_region = FR`` reads it)."""
    return f"01{40000000 + n:08d}"


def api_number(n: int) -> str:
    """`number` as the API sees it (``upstream.number_format = international``)."""
    return "0033" + number(n)[1:]


@dataclass(frozen=True)
class FaultMode:
    """One way to fail. ``reasons``: the SMARTROUTING_REASON words a call may end with
    (empty for a good answer); ``expected``: the one that must show."""

    name: str
    description: str
    reasons: frozenset[str]
    expected: str
    make: Callable[[], Any]

    @contextlib.asynccontextmanager
    async def serve(self, callers: int) -> AsyncIterator[str]:
        """Serve this mode for callers ``number(0)`` .. ``number(callers - 1)``; yield the URL."""
        server = self.make()
        if server is None:  # nothing listens
            yield _closed_port_url()
            return
        if isinstance(server, FakeUpstream):
            for n in range(callers):
                server.add_number(ACCOUNT, api_number(n), destination1="api", vip="1")
        await server.start()
        try:
            yield server.url
        finally:
            await server.close()


def _closed_port_url() -> str:
    """A URL on which nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _fake(**fault: Any) -> Callable[[], FakeUpstream]:
    return lambda: FakeUpstream(always=Fault(**fault))


_UNAVAILABLE = frozenset({"upstream_unavailable", "circuit_open"})
_TIMEOUT = frozenset({"upstream_timeout", "circuit_open"})
_BAD_ANSWER = frozenset({"upstream_bad_answer", "circuit_open"})

MODES: tuple[FaultMode, ...] = (
    FaultMode("healthy", "answers at once", frozenset({""}), "", _fake()),
    FaultMode("down", "nothing listens: connection refused", _UNAVAILABLE, "upstream_unavailable",
              lambda: None),
    FaultMode("refusing_403", "403 for every request", frozenset({"upstream_denied"}),
              "upstream_denied", _fake(status=403)),
    FaultMode("refusing_500", "500 for every request", _UNAVAILABLE, "upstream_unavailable",
              _fake(status=500)),
    FaultMode("slow_10s", "answers after 10 s", _TIMEOUT, "upstream_timeout", _fake(latency=10)),
    FaultMode("half_open", "accepts the connection, never answers", _TIMEOUT,
              "upstream_timeout", BlackHole),
    FaultMode("stalled_body", "sends the headers and half the body, then nothing", _TIMEOUT,
              "upstream_timeout", _fake(stall=True)),
    FaultMode("headers_only", "raw headers, then silence", _TIMEOUT, "upstream_timeout",
              lambda: BlackHole(BlackHole.HEADERS_ONLY)),
    FaultMode("cut_short", "headers and half the body, then a reset", _UNAVAILABLE,
              "upstream_unavailable", _fake(truncate=True)),
    FaultMode("reset", "resets the connection without answering", _UNAVAILABLE,
              "upstream_unavailable", _fake(reset=True)),
    FaultMode("garbage_html", "200 with an HTML page", _BAD_ANSWER, "upstream_bad_answer",
              _fake(body=HTML, content_type="text/html")),
    FaultMode("garbage_bytes", "bytes that are not HTTP", _UNAVAILABLE, "upstream_unavailable",
              lambda: BlackHole(GARBAGE)),
    FaultMode("flapping", "good and 503 in turn", frozenset({""}) | _UNAVAILABLE, "",
              lambda: FakeUpstream(cycle=(Fault(), Fault(status=503)))),
)  # fmt: skip
