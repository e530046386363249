"""A fake of the Encom "Routages intelligents" customer API (seed document 003), with faults.

``GET /api/v1/smartRoutings?customerAccount=CL0000&number=0033...&format=json|raw`` with
``Authorization: Bearer {token}``, as the document describes it:

* 400 when the request is malformed (no customerAccount, no number nor code, a bad format);
* 403 when the token has no rights on the customer account;
* ``{"destination1": "207", ..., "destination4": "216"}``, or only ``destinationN`` when the
  request names one (``destination=N``); ``format=raw`` gives ``207,209,214,216``;
* the VIP and on-call flags ride along as extra fields of the record (the document says
  the API tells them, not under which names: the router's names are configurable).

The document does not say what an unknown caller gets: ``not_found_status`` chooses (404 by
default, or 200 with ``{}``). Faults are queued per request (`Fault`), taken in turn from
``cycle`` (a flapping API), or set for every request (``always``): latency, another status,
a reset, a body cut short, a body that stalls half-way, a malformed body, another content
type. ``requests`` records every request that reached the handler.

`BlackHole` is below HTTP: a TCP listener that accepts and never answers, or answers bytes
that are not HTTP, or the headers of an answer whose body never comes.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

PATH = "/api/v1/smartRoutings"


@dataclass(frozen=True)
class Fault:
    """One deviation from the document, applied to one request (or to all, as ``always``)."""

    #: Seconds to wait before answering.
    latency: float = 0.0
    #: Answer this status (with a short JSON error body) instead of the record.
    status: int | None = None
    #: Answer these bytes instead of the record (status 200 unless ``status`` is set).
    body: bytes | None = None
    content_type: str | None = None
    #: Drop the connection (TCP reset) without answering.
    reset: bool = False
    #: Send the headers and half of the body, then drop the connection.
    truncate: bool = False
    #: Send the headers and half of the body, then nothing more (the connection stays open).
    stall: bool = False


@dataclass
class Seen:
    """A request as the fake received it."""

    params: dict[str, str]
    authorization: str


@dataclass
class FakeUpstream:
    """The API. ``await start()`` serves it on 127.0.0.1:0; ``url`` is then its base URL."""

    token: str = "t0k3n"
    #: Accounts the token may read; others get 403.
    accounts: set[str] = field(default_factory=lambda: {"CL0000"})
    not_found_status: int = 404
    always: Fault = field(default_factory=Fault)
    faults: deque[Fault] = field(default_factory=deque)
    #: When not empty, request N gets ``cycle[N % len(cycle)]`` (after queued ``faults``).
    cycle: tuple[Fault, ...] = ()
    requests: list[Seen] = field(default_factory=list)
    records: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    #: Set when a request arrives (clear it to wait for the next one).
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: TestServer | None = None

    def add_number(self, account: str, number: str, **answer: Any) -> None:
        """Answer ``answer`` (destination1=..., vip=..., ...) for ``number`` as the API sees it."""
        self.records[(account, "number", number)] = answer

    def add_code(self, account: str, code: str, **answer: Any) -> None:
        """Answer ``answer`` for the identification code ``code``."""
        self.records[(account, "code", code)] = answer

    def asked(self, value: str) -> int:
        """Return how many requests asked about ``value`` (a number or a code)."""
        return sum(value in (s.params.get("number"), s.params.get("code")) for s in self.requests)

    def counts(self) -> Counter[str]:
        """Requests per number or code asked."""
        return Counter(s.params.get("number") or s.params.get("code", "") for s in self.requests)

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    async def start(self) -> FakeUpstream:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = {k: v for k, v in request.query.items()}
        self.requests.append(Seen(params, request.headers.get("Authorization", "")))
        self.arrived.set()
        if self.faults:
            fault = self.faults.popleft()
        elif self.cycle:
            fault = self.cycle[(len(self.requests) - 1) % len(self.cycle)]
        else:
            fault = self.always
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.reset:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        if fault.status is not None and fault.body is None:
            return _json({"error": f"status {fault.status}"}, fault.status)
        if fault.body is not None:
            return web.Response(
                body=fault.body,
                status=fault.status or 200,
                content_type=fault.content_type or "application/json",
            )
        response = self._answer(request, params)
        if fault.content_type is not None:
            response.content_type = fault.content_type
        if fault.truncate or fault.stall:
            return await _truncated(request, response, stall=fault.stall)
        return response

    def _answer(self, request: web.Request, params: dict[str, str]) -> web.Response:
        account = params.get("customerAccount", "")
        number, code = params.get("number"), params.get("code")
        fmt = params.get("format", "json")
        if not account or not (number or code) or fmt not in ("json", "raw"):
            return _json({"error": "bad request"}, 400)
        if request.headers.get("Authorization") != f"Bearer {self.token}" or (
            account not in self.accounts
        ):
            return _json({"error": "not authorized"}, 403)
        key = (account, "number", number) if number else (account, "code", code or "")
        record = self.records.get(key)
        if record is None:
            if self.not_found_status == 200:
                return _json({}, 200)
            return _json({"error": "not found"}, self.not_found_status)
        answer = dict(record)
        wanted = params.get("destination")
        if wanted:
            name = f"destination{wanted}"
            answer = {k: v for k, v in answer.items() if not k.startswith("destination")}
            answer[name] = record.get(name, "")
        if fmt == "raw":
            values = [str(answer[k]) for k in sorted(answer) if k.startswith("destination")]
            return web.Response(text=",".join(values), content_type="text/plain")
        return _json(answer, 200)


def _json(data: Any, status: int) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


async def _truncated(
    request: web.Request, response: web.Response, *, stall: bool = False
) -> web.StreamResponse:
    body = response.body
    assert isinstance(body, bytes)
    stream = web.StreamResponse(status=response.status)
    stream.content_type = response.content_type
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if stall:
        # Until the client gives up (aiohttp does not cancel a handler when its peer goes).
        while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return stream


class BlackHole:
    """A TCP listener on 127.0.0.1:0 below HTTP. Each connection gets ``reply`` (nothing by
    default) and then silence: what it sends is read and dropped, nothing else is written,
    and the connection stays open until the client closes it.

    ``reply=b""``: accepts, never answers (a half-open or hung server). Bytes that are not
    HTTP: garbage where an answer should be. ``HEADERS_ONLY``: an answer whose body never
    comes. ``connections`` counts the connections accepted.
    """

    HEADERS_ONLY = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n"
        b'{"destination1": '
    )

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> BlackHole:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await reader.read(65536)  # the request
            if self.reply:
                writer.write(self.reply)
                await writer.drain()
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
