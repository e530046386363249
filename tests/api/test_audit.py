"""``GET /v1/audit``: every write through the API is recorded, and each token reads only the
entries of its accounts. The writes are taken from the access matrix's samples, so a new
write endpoint is audited or this test fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.test_access import (
    A_READER,
    A_WRITER,
    B_SECRET,
    SAMPLES,
    WRITES,
    A,
    B,
    protected,
    send,
    two_accounts,
)


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> Api:
    """The access matrix's API: limited tokens, the same records in accounts A and B."""
    return await two_accounts(api_factory)


async def total(api: Api, **params: str) -> int:
    reply = await api.get("/v1/audit", params={"limit": "1000", **params})
    assert reply.status == 200
    count: int = reply.json["total"]
    return count


async def test_every_write_endpoint_is_audited_with_the_token_name(api: Api) -> None:
    assert api.app is not None
    writes = [(m, r) for m, r in protected(api.app) if m in WRITES]
    assert len(writes) >= 7
    order = {"POST": 0, "PUT": 0, "DELETE": 1}
    for method, route in sorted(writes, key=lambda w: order[w[0]]):
        before = await total(api, account=A)
        reply = await send(api, method, SAMPLES[(method, route)](A), A_WRITER)
        assert reply.status == 200, (method, route, reply.body)
        assert await total(api, account=A) > before, (method, route)
        newest = (await api.get("/v1/audit", params={"account": A, "limit": "1"})).json["data"]
        assert newest[0]["actor"] == "api:a-writer", (method, route)
        assert newest[0]["account"] == A


async def test_a_refused_write_is_not_audited(api: Api) -> None:
    before = await total(api)
    reply = await api.post("/v1/smartrouting", params={"account": A}, json={"agent": "1"})
    assert reply.status == 400
    reply = await api.delete("/v1/customers/NOPE", params={"account": A})
    assert reply.status == 404
    assert await total(api) == before


async def test_a_token_reads_only_the_entries_of_its_accounts(api: Api) -> None:
    # The fixture wrote a route and a customer in A and in B with the admin token.
    everything = (await api.get("/v1/audit", params={"limit": "1000"})).json["data"]
    assert {e["account"] for e in everything} == {A, B}
    for token in (A_READER, A_WRITER):
        reply = await api.get("/v1/audit", params={"limit": "1000"}, token=token)
        assert reply.status == 200
        assert {e["account"] for e in reply.json["data"]} == {A}
        assert B_SECRET.encode() not in reply.body
        reply = await api.get("/v1/audit", params={"account": B}, token=token)
        assert reply.status == 403
    # An erasure in every account (account None) is shown to tokens of every account only.
    assert (await api.post("/v1/erasure", json={"phone_number": "0899990911"})).status == 200
    newest = (await api.get("/v1/audit", params={"limit": "1"})).json["data"][0]
    assert (newest["action"], newest["account"], newest["target"]) == ("caller.erase", None, "")
    reply = await api.get("/v1/audit", params={"action": "caller.erase"}, token=A_READER)
    assert reply.json["total"] == 0


async def test_filters(api: Api) -> None:
    data = (await api.get("/v1/audit", params={"action": "route.create"})).json["data"]
    assert [e["account"] for e in data] == [B, A]
    assert all(e["actor"] == "api:admin" for e in data)
    reply = await api.get("/v1/audit", params={"actor": "api:nobody"})
    assert reply.json["total"] == 0
    reply = await api.get("/v1/audit", params={"since": "2000-01-01", "until": "2000-01-02"})
    assert reply.json["total"] == 0
    reply = await api.get("/v1/audit", params={"since": "2000-01-01T00:00:00Z"})
    assert reply.json["total"] == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"action": "DROP TABLE"}, "action"),
        ({"actor": "a\nb"}, "actor"),
        ({"limit": "-1"}, "limit"),
        ({"accounts": "A"}, "accounts"),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(
    api: Api, params: dict[str, str], field: str
) -> None:
    reply = await api.get("/v1/audit", params=params)
    assert reply.status == 400
    assert reply.error["field"] == field


async def test_entries_hold_no_code_and_no_number_outside_the_target(api: Api) -> None:
    body: dict[str, Any] = {"phone_numbers": ["0899990944"], "code": "987654"}
    assert (await api.put("/v1/customers/C7", params={"account": A}, json=body)).status == 200
    reply = await api.get("/v1/audit", params={"limit": "1000"})
    assert b"987654" not in reply.body
    assert all("89999" not in e["detail"] for e in reply.json["data"])


async def test_a_partial_import_records_the_rows_it_rejected(api: Api) -> None:
    good = "CL0000,C5,five,,,q,,,,0,0"
    bad = "CL0000,C6,six,not-a-number,,q,,,,0,0"
    header = (
        "account,customer_id,name,phone_numbers,code,destination1,destination2,"
        "destination3,destination4,vip,oncall"
    )
    body = f"{header}\n{good}\n{bad}\n".encode()
    reply = await api.post("/v1/customers/import", params={"partial": "true"}, data=body)
    assert reply.status == 200
    newest = (await api.get("/v1/audit", params={"limit": "1"})).json["data"][0]
    assert (newest["action"], newest["account"], newest["detail"]) == (
        "customers.import",
        "CL0000",
        "customers=1 rejected=1",
    )
