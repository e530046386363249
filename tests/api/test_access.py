"""Authentication and account scoping, for every route the application serves.

The matrix is built from ``app.router.routes()``: each route must have a sample request in
`SAMPLES` (a new endpoint without one fails `test_every_route_has_a_sample`), and every
protected route is then tried

* without a token, with an unknown token, with a malformed header: 401 with a challenge;
* with the read-only token: a write is 403, a read is served;
* with a token limited to account A on account B's data (list, get, upsert, delete,
  lookup, import): 403, and the same request on account A is served;

and after every refused request the store holds exactly what it held before (nothing
written, nothing deleted), and the answer carries none of account B's data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from fastagi_router.api.middleware import PUBLIC
from fastagi_router.api.tokens import digest
from fastagi_router.csvio import COLUMNS
from tests.api.conftest import Api
from tests.conftest import ADMIN_TOKEN, READER_TOKEN, TEST_TOKENS

#: Account A, which the limited tokens may use, and account B, which they may not.
A, B = "CL0000", "CL0001"
A_WRITER = "test-a-writer-token-0123456789"
A_READER = "test-a-reader-token-0123456789"
TOKENS = (
    *TEST_TOKENS,
    f"sha256:{digest(A_WRITER)} accounts={A} write name=a-writer",
    f"sha256:{digest(A_READER)} accounts={A} read name=a-reader",
)
#: What account B's records hold that no refused answer may show.
B_SECRET = "bsecret"
PHONE = "0899990988"
OTHER_PHONE = "0899990966"
WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})


@dataclass(frozen=True)
class Sample:
    """One request to a route, for ``account``."""

    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: bytes | None = None


def _csv(account: str) -> bytes:
    row = {c: "" for c in COLUMNS}
    row.update(account=account, customer_id="C9", name="new", destination1="q", vip="0")
    row["oncall"] = "0"
    return (",".join(COLUMNS) + "\n" + ",".join(row[c] for c in COLUMNS) + "\n").encode()


#: (method, route) -> the request that acts on an account's data. Add one per new route.
SAMPLES: dict[tuple[str, str], Callable[[str], Sample]] = {
    ("GET", "/v1/smartrouting"): lambda acc: Sample("/v1/smartrouting", {"account": acc}),
    ("POST", "/v1/smartrouting"): lambda acc: Sample(
        "/v1/smartrouting", {"account": acc}, json={"phone_number": "0899990977", "agent": "7"}
    ),
    ("GET", "/v1/smartrouting/{key}"): lambda acc: Sample(
        f"/v1/smartrouting/{PHONE}", {"account": acc}
    ),
    ("DELETE", "/v1/smartrouting/{key}"): lambda acc: Sample(
        f"/v1/smartrouting/{PHONE}", {"account": acc}
    ),
    ("GET", "/api/v1/smartRoutings"): lambda acc: Sample(
        "/api/v1/smartRoutings", {"customerAccount": acc, "number": PHONE}
    ),
    ("GET", "/v1/customers"): lambda acc: Sample("/v1/customers", {"account": acc}),
    ("POST", "/v1/customers"): lambda acc: Sample(
        "/v1/customers", {"account": acc}, json={"customer_id": "C9", "name": "new"}
    ),
    ("POST", "/v1/customers/import"): lambda acc: Sample("/v1/customers/import", data=_csv(acc)),
    ("GET", "/v1/customers/{customer_id}"): lambda acc: Sample(
        "/v1/customers/C1", {"account": acc}
    ),
    ("PUT", "/v1/customers/{customer_id}"): lambda acc: Sample(
        "/v1/customers/C1", {"account": acc}, json={"name": "changed"}
    ),
    ("DELETE", "/v1/customers/{customer_id}"): lambda acc: Sample(
        "/v1/customers/C1", {"account": acc}
    ),
    ("GET", "/v1/audit"): lambda acc: Sample("/v1/audit", {"account": acc}),
    # A number nobody holds: the requests served on account A must not erase what the
    # other samples act on.
    ("POST", "/v1/erasure"): lambda acc: Sample(
        "/v1/erasure", {"account": acc}, json={"phone_number": OTHER_PHONE}
    ),
}
#: Routes that name no account: the listing of every account's customers, an erasure in
#: every account. (``GET /v1/audit`` without one lists the token's accounts: test_audit.)
ALL_ACCOUNTS = {
    ("GET", "/v1/customers"): Sample("/v1/customers"),
    ("POST", "/v1/erasure"): Sample("/v1/erasure", json={"phone_number": OTHER_PHONE}),
}


def routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, route pattern) the application serves."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
    )


def protected(app: web.Application) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if p not in PUBLIC]


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> Api:
    """The API with the limited tokens and the same records in accounts A and B."""
    return await two_accounts(api_factory)


async def two_accounts(api_factory: Callable[..., Any]) -> Api:
    """A fresh API with the limited tokens and the same records in accounts A and B."""
    made: Api = await api_factory(api={"tokens": TOKENS})
    for account, agent in ((A, "a1"), (B, B_SECRET)):
        reply = await made.post(
            "/v1/smartrouting",
            params={"account": account},
            json={"phone_number": PHONE, "agent": agent},
        )
        assert reply.status == 200
        reply = await made.put(
            "/v1/customers/C1",
            params={"account": account},
            json={"name": agent, "phone_numbers": [PHONE], "destination1": agent},
        )
        assert reply.status == 200
    return made


async def snapshot(api: Api) -> tuple[Any, ...]:
    """Everything the store holds, read with the admin token."""
    routes_ = []
    for account in (A, B, "default"):
        reply = await api.get("/v1/smartrouting", params={"account": account, "limit": "1000"})
        routes_.append(reply.json["data"])
    customers = (await api.get("/v1/customers", params={"limit": "1000"})).json["data"]
    return (routes_, customers)


async def send(api: Api, method: str, sample: Sample, token: str | None, **kw: Any) -> Any:
    extra: dict[str, Any] = {"params": sample.params, "token": token, **kw}
    if sample.json is not None:
        extra["json"] = sample.json
    if sample.data is not None:
        extra["data"] = sample.data
    return await api.call(method, sample.path, **extra)


async def test_every_route_has_a_sample(api: Api) -> None:
    app = api.app
    assert app is not None
    missing = [r for r in protected(app) if r not in SAMPLES]
    assert not missing, f"add a request for {missing} to SAMPLES so that access is tested"
    assert set(SAMPLES) <= set(protected(app)), "SAMPLES names a route that is gone"
    assert {p for _, p in routes(app)} >= PUBLIC


@pytest.mark.parametrize(
    ("header", "invalid_token"),
    [
        (None, False),
        ("", False),
        ("Bearer unknown-token-0123456789abcdef", True),
        ("Bearer", True),
        ("Basic dXNlcjpwYXNz", True),
        (f"Bearer {ADMIN_TOKEN[:-1]}", True),
        (f"Bearer {ADMIN_TOKEN} {ADMIN_TOKEN}", True),
        (f"Token {ADMIN_TOKEN}", True),
    ],
)
async def test_no_token_or_a_bad_one_is_401_everywhere(
    api: Api, header: str | None, invalid_token: bool
) -> None:
    assert api.app is not None
    before = await snapshot(api)
    headers = {} if header is None else {"Authorization": header}
    for method, route in protected(api.app):
        sample = SAMPLES[(method, route)](B)
        reply = await send(api, method, sample, None, headers=headers)
        assert reply.status == 401, (method, route, header, reply.body)
        assert reply.error["code"] == "unauthorized"
        challenge = reply.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="fastagi-router"')
        assert ('error="invalid_token"' in challenge) is invalid_token
        assert B_SECRET.encode() not in reply.body
    assert await snapshot(api) == before


async def test_public_routes_need_no_token(api: Api) -> None:
    assert api.app is not None
    public = [(m, p) for m, p in routes(api.app) if p in PUBLIC]
    assert sorted(p for _, p in public) == sorted(PUBLIC)
    for method, path in public:
        reply = await api.call(method, path, token=None)
        assert reply.status == 200, (method, path)
        assert B_SECRET.encode() not in reply.body


@pytest.mark.parametrize("token", [READER_TOKEN, A_READER])
async def test_a_read_only_token_never_writes(api: Api, token: str) -> None:
    assert api.app is not None
    before = await snapshot(api)
    for method, route in protected(api.app):
        sample = SAMPLES[(method, route)](A)
        reply = await send(api, method, sample, token)
        if method in WRITES:
            assert reply.status == 403, (method, route, reply.body)
            assert reply.error["code"] == "forbidden"
        else:
            assert reply.status == 200, (method, route, reply.body)
    assert await snapshot(api) == before


async def test_a_token_of_account_a_cannot_touch_account_b(api: Api) -> None:
    assert api.app is not None
    before = await snapshot(api)
    for token in (A_WRITER, A_READER):
        for method, route in protected(api.app):
            if token == A_READER and method in WRITES:
                continue  # refused as a write already (test above)
            reply = await send(api, method, SAMPLES[(method, route)](B), token)
            assert reply.status == 403, (token, method, route, reply.body)
            assert reply.error["code"] == "forbidden"
            assert B_SECRET.encode() not in reply.body, (method, route)
        for (method, route), sample in ALL_ACCOUNTS.items():
            reply = await send(api, method, sample, token)
            assert reply.status == 403, (method, route)
            assert B_SECRET.encode() not in reply.body
    assert await snapshot(api) == before


async def test_the_same_requests_on_account_a_are_served(api: Api) -> None:
    """The control of the test above: its 403s were about the account, nothing else."""
    assert api.app is not None
    # Reads first, then writes, deletes last, so that each finds what it acts on.
    order = {"GET": 0, "POST": 1, "PUT": 1, "DELETE": 2}
    for method, route in sorted(protected(api.app), key=lambda r: order[r[0]]):
        reply = await send(api, method, SAMPLES[(method, route)](A), A_WRITER)
        assert reply.status == 200, (method, route, reply.body)
        assert B_SECRET.encode() not in reply.body, (method, route)
    # Account B is as it was.
    reply = await api.get(f"/v1/smartrouting/{PHONE}", params={"account": B})
    assert reply.json["agent"] == B_SECRET
    reply = await api.get("/v1/customers/C1", params={"account": B})
    assert reply.json["name"] == B_SECRET


async def test_an_import_mixing_accounts_is_refused_whole(api: Api) -> None:
    before = await snapshot(api)
    mixed = _csv(A) + _csv(B).split(b"\n", 1)[1].replace(b"C9", b"C8")
    reply = await api.post("/v1/customers/import", data=mixed, token=A_WRITER)
    assert reply.status == 403
    assert await snapshot(api) == before
