"""``GET /api/v1/smartRoutings``: the customer lookup, its formats, selector and errors."""

from __future__ import annotations

import pytest

from fastagi_router.model import Customer
from tests.api.conftest import Api
from tests.conftest import CL0000_TOKEN

LOOKUP = "/api/v1/smartRoutings"


@pytest.fixture
async def customers(api: Api) -> Api:
    await api.store.import_customers(
        [
            Customer(
                account="CL0000",
                customer_id="C1",
                phone_numbers=("+33142685300",),
                code="4321",
                destinations=("207", "209", "214", "216"),
                vip=True,
                oncall=True,
            ),
            Customer(
                account="default",
                customer_id="D1",
                phone_numbers=("+84899990988",),
                code="999",
                destinations=("100", "", "", ""),
            ),
        ]
    )
    return api


async def test_by_number_in_any_form(customers: Api) -> None:
    for number in ("0033142685300", "+33142685300", "+33 1 42 68 53 00"):
        reply = await customers.get(
            LOOKUP, params={"customerAccount": "CL0000", "number": number}, token=CL0000_TOKEN
        )
        assert reply.json == {
            "destination1": "207",
            "destination2": "209",
            "destination3": "214",
            "destination4": "216",
            "vip": True,
            "astreinte": True,
        }


async def test_by_code(customers: Api) -> None:
    reply = await customers.get(
        LOOKUP, params={"customerAccount": "CL0000", "code": "4321"}, token=CL0000_TOKEN
    )
    assert reply.json["destination1"] == "207"


@pytest.mark.parametrize("slot", ["1", "2", "3", "4"])
async def test_the_destination_selector(customers: Api, slot: str) -> None:
    params = {"customerAccount": "CL0000", "number": "+33142685300", "destination": slot}
    reply = await customers.get(LOOKUP, params=params, token=CL0000_TOKEN)
    expected = {"1": "207", "2": "209", "3": "214", "4": "216"}[slot]
    assert reply.json == {f"destination{slot}": expected, "vip": True, "astreinte": True}
    reply = await customers.get(LOOKUP, params={**params, "format": "raw"}, token=CL0000_TOKEN)
    assert reply.text == expected and reply.content_type == "text/plain"


async def test_raw_keeps_the_slots_of_unused_destinations(customers: Api) -> None:
    params = {"customerAccount": "CL0000", "number": "0899990988", "format": "raw"}
    reply = await customers.get(LOOKUP, params=params, token=CL0000_TOKEN)
    assert reply.text == "100,,,"


async def test_the_default_account_applies_as_for_a_call(customers: Api) -> None:
    """A customer of ``default`` answers for an account without its own, as on a call."""
    params = {"customerAccount": "CL0000", "code": "999"}
    reply = await customers.get(LOOKUP, params=params, token=CL0000_TOKEN)
    assert reply.json["destination1"] == "100" and reply.json["vip"] is False


async def test_no_match_is_404(customers: Api) -> None:
    for params in (
        {"customerAccount": "CL0000", "number": "0899990000"},
        {"customerAccount": "CL0000", "code": "1"},
    ):
        reply = await customers.get(LOOKUP, params=params, token=CL0000_TOKEN)
        assert reply.status == 404 and reply.error["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"number": "+33142685300"}, "customerAccount"),
        ({"customerAccount": "", "number": "+33142685300"}, "customerAccount"),
        ({"customerAccount": "CL 0000", "number": "+33142685300"}, "customerAccount"),
        ({"customerAccount": "CL0000"}, "number"),
        ({"customerAccount": "CL0000", "number": "+33142685300", "code": "4321"}, "number"),
        ({"customerAccount": "CL0000", "number": "hello"}, "number"),
        ({"customerAccount": "CL0000", "code": "12ab"}, "code"),
        ({"customerAccount": "CL0000", "number": "+33142685300", "format": "xml"}, "format"),
        ({"customerAccount": "CL0000", "number": "+33142685300", "destination": "5"},
         "destination"),
        ({"customerAccount": "CL0000", "number": "+33142685300", "destination": "01"},
         "destination"),
        ({"customerAccount": "CL0000", "number": "+33142685300", "customer": "x"}, "customer"),
    ],
)  # fmt: skip
async def test_malformed_requests_are_400(
    customers: Api, params: dict[str, str], field: str
) -> None:
    reply = await customers.get(LOOKUP, params=params, token=CL0000_TOKEN)
    assert reply.status == 400
    assert reply.error["field"] == field


async def test_an_account_the_token_may_not_use_is_403(customers: Api) -> None:
    params = {"customerAccount": "CL0001", "number": "+33142685300"}
    reply = await customers.get(LOOKUP, params=params, token=CL0000_TOKEN)
    assert reply.status == 403
    # Errors are JSON even when raw was asked for.
    reply = await customers.get(LOOKUP, params={**params, "format": "raw"}, token=CL0000_TOKEN)
    assert reply.status == 403 and reply.error["code"] == "forbidden"
