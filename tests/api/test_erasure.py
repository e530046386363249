"""Erasure, end to end: over the API and with the CLI while the router serves, the next call
no longer finds the caller, though the hot layer answered it from memory just before."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from fastagi_router.cli import main
from fastagi_router.simulator import CallSpec
from tests.api.conftest import Api
from tests.conftest import CL0000_TOKEN

SPELLINGS = ("0899990988", "+84899990988", "0084899990988", "84899990988")


async def call(router: Any, callerid: str = "0899990988", account: str = "default") -> Any:
    result = await router.asterisk.call(
        CallSpec(callerid=callerid, script=f"route?account={account}", port=router.app.agi.port)
    )
    return result.variables


async def known_caller(router: Any, api: Api) -> None:
    """A route and a customer for the number, answered from memory on the second call."""
    reply = await api.post("/v1/smartrouting", json={"phone_number": "0899990988", "agent": "104"})
    assert reply.status == 200
    body = {"phone_numbers": ["+84899990988"], "destination1": "207"}
    assert (await api.put("/v1/customers/C1", json=body)).status == 200
    hits = router.store.hits
    for _ in range(2):
        variables = await call(router)
        assert (variables["SMARTROUTING_STATUS"], variables["SMARTROUTING_AGENT"]) == (
            "AGENT",
            "104",
        )
    assert router.store.hits > hits  # the hot layer holds the caller


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_an_erasure_over_the_api_applies_to_the_next_call(live: Any, spelling: str) -> None:
    router, api = live
    await known_caller(router, api)
    reply = await api.post("/v1/erasure", json={"phone_number": spelling})
    assert reply.status == 200
    assert reply.json["data"] == {
        "number_key": "+84899990988",
        "account": None,
        "routes": 1,
        "customer_numbers": 1,
        "customers": 1,
        "cache_entries": 0,
        "audit_entries": 1,
    }
    variables = await call(router)
    assert (variables["SMARTROUTING_STATUS"], variables["SMARTROUTING_AGENT"]) == ("UNKNOWN", "")
    log = (await api.get("/v1/audit", params={"limit": "100"})).json["data"]
    assert log[0]["action"] == "caller.erase"
    assert b"899990988" not in (await api.get("/v1/audit")).body


async def test_an_erasure_with_the_cli_applies_to_the_next_call(live: Any) -> None:
    router, api = live
    await known_caller(router, api)
    out = io.StringIO()
    db = router.app.settings.db
    code = await asyncio.to_thread(main, ["erase", "0084899990988", "--db", db], out)
    assert code == 0
    assert out.getvalue() == (
        "erased +84899990988 in every account: routes=1 customer_numbers=1 customers=1 "
        "cache_entries=0 audit_entries=1\n"
    )
    assert (await call(router))["SMARTROUTING_STATUS"] == "UNKNOWN"


async def test_an_erasure_in_one_account_keeps_the_others(live: Any) -> None:
    router, api = live
    for account in ("CL0000", "CL0001"):
        reply = await api.post(
            "/v1/smartrouting",
            params={"account": account},
            json={"phone_number": "0899990988", "agent": "104"},
        )
        assert reply.status == 200
    reply = await api.post(
        "/v1/erasure",
        params={"account": "CL0000"},
        json={"phone_number": "0899990988"},
        token=CL0000_TOKEN,
    )
    assert reply.json["data"]["routes"] == 1
    assert (await call(router, account="CL0000"))["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert (await call(router, account="CL0001"))["SMARTROUTING_AGENT"] == "104"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"phone_number": "anonymous"}, 400, "phone_number"),
        ({"phone_number": "not a number"}, 400, "phone_number"),
        ({"phone_number": "1" * 65}, 400, "phone_number"),
        ({}, 400, "phone_number"),
        ({"phone_number": "0899990988", "account": "x"}, 400, "account"),
    ],
)
async def test_bad_input_is_refused_and_erases_nothing(
    live: Any, body: dict[str, str], status: int, field: str
) -> None:
    router, api = live
    reply = await api.post("/v1/smartrouting", json={"phone_number": "0899990988", "agent": "104"})
    assert reply.status == 200
    reply = await api.post("/v1/erasure", json=body)
    assert (reply.status, reply.error["field"]) == (status, field)
    assert (await call(router))["SMARTROUTING_AGENT"] == "104"
