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
default, or 200 with ``{}``). Faults are queued per request (`Fault`) or set for every
request (``always``): latency, another status, a reset, a body cut short, a malformed body,
another content type. ``requests`` records every request that reached the handler.
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
        fault = self.faults.popleft() if self.faults else self.always
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
        if fault.truncate:
            return await _truncated(request, response)
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


async def _truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
    body = response.body
    assert isinstance(body, bytes)
    stream = web.StreamResponse(status=response.status)
    stream.content_type = response.content_type
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    assert request.transport is not None
    request.transport.abort()
    return stream
