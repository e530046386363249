"""``GET /api/v1/smartRoutings``: the customer lookup of the Encom customer API.

The document defines the lookup by caller number (``customerAccount`` and ``number``
mandatory), ``format=json|raw``, a selected destination returning only that one, and the
400 and 403 answers. This product adds, as documented extensions: the lookup by
identification code (``code=`` instead of ``number=``), the ``destination=1..4`` parameter
name, the ``vip`` and ``astreinte`` booleans beside the destinations in json, and 404 when
no customer matches.

The answer is what a call of that account would get from the local store: the account's own
customer, else one of the account ``default``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fastagi_router.api.errors import ApiError, invalid, missing
from fastagi_router.api.keys import NUMBERS, STORE
from fastagi_router.api.params import Query, check
from fastagi_router.api.smartrouting import MAX_PHONE_TEXT
from fastagi_router.model import MAX_DESTINATIONS, Customer, check_code

FORMATS = ("json", "raw")
PARAMETERS = ("customerAccount", "number", "code", "format", "destination")


def lookup_json(customer: Customer, selected: int | None) -> dict[str, Any]:
    """The json answer: ``destination1``..``4`` (or only the selected one), ``vip`` and
    ``astreinte``."""
    slots = range(1, MAX_DESTINATIONS + 1) if selected is None else (selected,)
    body: dict[str, Any] = {f"destination{n}": customer.destinations[n - 1] for n in slots}
    body["vip"] = customer.vip
    body["astreinte"] = customer.oncall
    return body


def lookup_raw(customer: Customer, selected: int | None) -> str:
    """The raw answer: the four destinations comma-separated in their slots (an unused one
    is empty), or only the selected one."""
    if selected is not None:
        return customer.destinations[selected - 1]
    return ",".join(customer.destinations)


async def smart_routings(request: web.Request) -> web.Response:
    """``GET /api/v1/smartRoutings?customerAccount=&number=|code=[&format=][&destination=]``."""
    query = Query(request, PARAMETERS)
    if not query.get("customerAccount"):
        raise missing("customerAccount", "the customer account, e.g. CL0000")
    number_text, code = query.get("number"), query.get("code")
    if bool(number_text) == bool(code):
        raise ApiError(
            "missing_value" if not number_text else "invalid_value",
            "give exactly one of number (the caller's number) and code (an identification code)",
            field="number",
        )
    output = query.get("format") or "json"
    if output not in FORMATS:
        raise invalid("format", f"format is json or raw, not {output[:20]!r}")
    selected_text = query.get("destination")
    selected: int | None = None
    if selected_text:
        if selected_text not in ("1", "2", "3", "4"):
            raise invalid("destination", f"destination is 1 to 4, not {selected_text[:20]!r}")
        selected = int(selected_text)
    number_key = None
    if number_text:
        if len(number_text) > MAX_PHONE_TEXT:
            raise invalid("number", f"number is at most {MAX_PHONE_TEXT} characters")
        number_key = request.app[NUMBERS].parse(number_text, field="number").key
    elif code:
        check(check_code, code, "code")
    account = query.account("customerAccount", default=None)
    store = request.app[STORE]
    customer: Customer | None
    if number_key is not None:
        customer = (await store.lookup_number(account, number_key)).customer
    else:
        assert code is not None
        customer = await store.lookup_code(account, code)
    if customer is None:
        by = "number" if number_key is not None else "code"
        raise ApiError("not_found", f"no customer of {account!r} has this {by}", field=by)
    if output == "raw":
        return web.Response(text=lookup_raw(customer, selected), content_type="text/plain")
    return web.json_response(lookup_json(customer, selected))


def add_routes(app: web.Application) -> None:
    """Register this group's endpoint."""
    app.router.add_get("/api/v1/smartRoutings", smart_routings, allow_head=False)
