"""``/v1/smartrouting``: the sticky-agent table, as the smart-routing API documents it.

Every record carries both ``agent`` (what the insert takes) and ``description`` (what the
document's listing shows; a free-text note that defaults to the agent), with ``id`` always
an integer. In a path, one to six digits without a leading zero is an id; anything else is
a phone number, normalised so that every form of a number finds the same record.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from fastagi_router.api.errors import ApiError, invalid
from fastagi_router.api.keys import NUMBERS, STORE
from fastagi_router.api.params import (
    Query,
    actor,
    check,
    json_object,
    page_response,
    text_field,
)
from fastagi_router.errors import ValidationError
from fastagi_router.model import Route, check_name, check_token

_ID = re.compile(r"[1-9][0-9]{0,5}")
MAX_PHONE_TEXT = 64
SUCCESS = "successfully"


def route_json(route: Route) -> dict[str, Any]:
    """The JSON form of a route."""
    return {
        "id": route.id,
        "account": route.account,
        "phone_number": route.phone_number,
        "number_key": route.number_key,
        "agent": route.agent,
        "description": route.description,
        "origin": route.origin,
        "created_at": route.created_at,
        "updated_at": route.updated_at,
        "last_seen_at": route.last_seen_at,
    }


def _selector(request: web.Request) -> dict[str, Any]:
    """``route_id`` or ``number_key`` for the ``{key}`` of the path."""
    key = request.match_info["key"]
    if _ID.fullmatch(key):
        return {"route_id": int(key)}
    if len(key) > MAX_PHONE_TEXT:
        raise invalid("id", "an id is 1-6 digits; a phone number is at most 64 characters")
    try:
        number = request.app[NUMBERS].parse(key, field="id")
    except ValidationError as exc:
        raise invalid(
            "id", f"{key[:40]!r} is neither an id (1-6 digits, no leading 0) nor a phone number"
        ) from exc
    return {"number_key": number.key}


def _not_found(request: web.Request, account: str) -> ApiError:
    key = request.match_info["key"]
    return ApiError(
        "not_found", f"no smart routing {key[:40]!r} in account {account!r}", field="id"
    )


async def list_routes(request: web.Request) -> web.Response:
    """``GET /v1/smartrouting``."""
    query = Query(request, ("account", "limit", "offset"))
    account = query.account()
    limit, offset = query.page()
    page = await request.app[STORE].list_routes(account, limit, offset)
    return page_response(page, route_json, limit, offset)


async def get_route(request: web.Request) -> web.Response:
    """``GET /v1/smartrouting/{id or phone number}``."""
    account = Query(request, ("account",)).account()
    route = await request.app[STORE].get_route(account, **_selector(request))
    if route is None:
        raise _not_found(request, account)
    return web.json_response(route_json(route))


async def upsert_route(request: web.Request) -> web.Response:
    """``POST /v1/smartrouting``: insert, or update the record of that number."""
    account = Query(request, ("account",)).account()
    body = await json_object(request, ("phone_number", "agent", "description"))
    phone = text_field(body, "phone_number", required=True)
    agent = text_field(body, "agent", required=True)
    description = text_field(body, "description")
    assert phone is not None and agent is not None
    phone = phone.strip()
    if len(phone) > MAX_PHONE_TEXT:
        raise invalid("phone_number", f"phone_number is at most {MAX_PHONE_TEXT} characters")
    number = request.app[NUMBERS].parse(phone, field="phone_number")
    check(check_token, agent, "agent")
    if description is not None:
        check(check_name, description, "description")
    route = await request.app[STORE].set_route(
        account, phone, number.key, agent, description=description, actor=actor(request)
    )
    return web.json_response({"data": route_json(route), "message": SUCCESS})


async def delete_route(request: web.Request) -> web.Response:
    """``DELETE /v1/smartrouting/{id or phone number}``."""
    account = Query(request, ("account",)).account()
    deleted = await request.app[STORE].delete_route(
        account, **_selector(request), actor=actor(request)
    )
    if not deleted:
        raise _not_found(request, account)
    return web.json_response({"message": SUCCESS})


def add_routes(app: web.Application) -> None:
    """Register this group's endpoints."""
    app.router.add_get("/v1/smartrouting", list_routes, allow_head=False)
    app.router.add_post("/v1/smartrouting", upsert_route)
    app.router.add_get("/v1/smartrouting/{key}", get_route, allow_head=False)
    app.router.add_delete("/v1/smartrouting/{key}", delete_route)
