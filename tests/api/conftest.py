"""The REST API under test: the real application over HTTP on a real SQLite file.

Every request goes through `Api`, which checks each answer against the OpenAPI document the
application serves: the status must be documented for that operation, the content type too,
and a JSON body must validate against the documented schema. So every test of this folder
is also a test of ``/openapi.json``.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from fastagi_router.api.app import create_app
from fastagi_router.api.keys import STORE
from fastagi_router.api.openapi import document
from fastagi_router.store import Store
from tests.conftest import ADMIN_TOKEN, make_settings

DOC = document()
_UNSET: Any = object()


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


#: Documented paths, literal ones first so that /v1/customers/import beats {customer_id}.
TEMPLATES = sorted(DOC["paths"], key=lambda t: (t.count("{"), t))
_MATCHERS = [(t, _template_regex(t)) for t in TEMPLATES]


def documented_path(path: str, method: str | None = None) -> str | None:
    """The documented path template that ``path`` falls under, or None.

    With ``method``, the first one documenting that method: a customer named ``import``
    is served under ``{customer_id}`` for every method but POST (see the document).
    """
    matches = [template for template, regex in _MATCHERS if regex.fullmatch(path)]
    for template in matches:
        if method is not None and method.lower() in DOC["paths"][template]:
            return template
    return matches[0] if matches else None


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` in the document."""
    while "$ref" in node and len(node) == 1:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validate(schema: dict[str, Any], instance: Any) -> None:
    """Validate against a schema of the document (its ``$ref`` resolved in the document)."""
    jsonschema.Draft202012Validator({**schema, "components": DOC["components"]}).validate(instance)


@dataclass
class Reply:
    """One answer: status, headers and body."""

    method: str
    path: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def json(self) -> Any:
        assert self.content_type == "application/json", (self.content_type, self.body[:200])
        return jsonlib.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        body = self.json
        assert set(body["error"]) <= {"code", "message", "field"}, body
        error: dict[str, Any] = body["error"]
        return error


def check_documented(reply: Reply) -> None:
    """Assert that the answer is what /openapi.json documents for the request."""
    template = documented_path(reply.path, reply.method)
    operation = DOC["paths"][template].get(reply.method.lower()) if template else None
    if operation is None:
        # Not an operation of the API: only the generic errors, in the generic shape.
        assert reply.status in (404, 405), (reply.method, reply.path, reply.status)
        validate({"$ref": "#/components/schemas/Error"}, reply.json)
        return
    spec = operation["responses"].get(str(reply.status))
    assert spec is not None, (
        f"{reply.method} {template} answered {reply.status}, which the document does not "
        f"list: {reply.body[:300]!r}"
    )
    spec = resolve(spec)
    content = spec.get("content", {})
    assert reply.content_type in content, (template, reply.status, reply.content_type)
    if reply.content_type == "application/json":
        validate(content["application/json"]["schema"], reply.json)
    for header in spec.get("headers", {}):
        assert header in reply.headers, (template, reply.status, header)


class Api:
    """Makes requests (with a token by default) and checks every answer against the
    document. ``client`` is an aiohttp `TestClient` or a `ClientSession` with a base URL."""

    def __init__(self, client: Any, app: web.Application | None = None) -> None:
        self.client = client
        self.app = app
        self.replies: list[Reply] = []

    @property
    def store(self) -> Store:
        assert self.app is not None
        return self.app[STORE]

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = ADMIN_TOKEN,
        params: Any = None,
        json: Any = _UNSET,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {token}"
        extra: dict[str, Any] = {"params": params, "data": data, "headers": sent}
        if json is not _UNSET:
            extra["json"] = json
        async with self.client.request(method, path, **extra) as response:
            body = await response.read()
            reply = Reply(method, response.url.raw_path, response.status, response.headers, body)
        check_documented(reply)
        assert reply.status != 500, reply.body
        self.replies.append(reply)
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.call("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.call("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)


@pytest.fixture
async def api_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make(**settings_changes)`` -> `Api` on a fresh application (its own SQLite
    store in ``tmp_path``, opened by the application's clean-up context)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**changes: Any) -> Api:
        app = create_app(make_settings(tmp_path, **changes))
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client, app)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> Api:
    result: Api = await api_factory()
    return result


@pytest.fixture
async def live(start_router: Any) -> AsyncIterator[tuple[Any, Api]]:
    """A started router (FastAGI and REST API, no code prompt), and an `Api` on its HTTP
    port: for tests of the API inside the running router."""
    router = await start_router(prompt={"attempts": 0})
    assert router.http_url is not None
    async with aiohttp.ClientSession(base_url=router.http_url) as session:
        yield router, Api(session)
