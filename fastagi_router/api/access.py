"""``/v1/audit`` (who changed what, and when) and ``/v1/erasure`` (a caller's data removed).

The audit log lists every write made through this API and the command line, newest first,
limited to the accounts of the token (entries that span every account, such as an erasure
in all of them, only for a token of every account). An erasure takes the number in the
body, not in the path, so that the number being erased is not written into access logs.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from fastagi_router.api.errors import invalid
from fastagi_router.api.keys import NUMBERS, STORE, TOKEN
from fastagi_router.api.params import (
    Query,
    actor,
    authorize_all,
    json_object,
    page_response,
    text_field,
)
from fastagi_router.api.smartrouting import MAX_PHONE_TEXT, SUCCESS
from fastagi_router.errors import ValidationError
from fastagi_router.model import AuditEntry
from fastagi_router.store.audit import parse_time
from fastagi_router.store.base import AuditQuery

_ACTION = re.compile(r"[a-z][a-z_.]{0,39}")
_ACTOR = re.compile(r"[A-Za-z0-9_.:@-][A-Za-z0-9_.:@ ()-]{0,99}")


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """The JSON form of an audit entry."""
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "account": entry.account,
        "target": entry.target,
        "detail": entry.detail,
    }


def _time(query: Query, name: str) -> str | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return parse_time(text, name)
    except ValidationError as exc:
        raise invalid(name, exc.message) from exc


def _matching(query: Query, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = query.get(name)
    if value is not None and not pattern.fullmatch(value):
        raise invalid(name, f"{name} must be {what}, not {value[:40]!r}")
    return value


async def list_audit(request: web.Request) -> web.Response:
    """``GET /v1/audit``: entries newest first, filtered, within the token's accounts."""
    query = Query(request, ("since", "until", "actor", "action", "account", "limit", "offset"))
    accounts = (
        frozenset({query.account()})
        if query.get("account") is not None
        else request[TOKEN].accounts
    )
    limit, offset = query.page()
    wanted = AuditQuery(
        since=_time(query, "since"),
        until=_time(query, "until"),
        actor=_matching(query, "actor", _ACTOR, "an actor as listed (api:NAME, cli:USER, ...)"),
        action=_matching(query, "action", _ACTION, "an action as listed (route.create, ...)"),
        accounts=accounts,
        limit=limit,
        offset=offset,
    )
    page = await request.app[STORE].list_audit(wanted)
    return page_response(page, audit_json, limit, offset)


async def erase(request: web.Request) -> web.Response:
    """``POST /v1/erasure``: remove one caller's number from everything the store keeps."""
    query = Query(request, ("account",))
    account: str | None = None
    if query.get("account") is not None:
        account = query.account()
    else:
        authorize_all(request)
    body = await json_object(request, ("phone_number",))
    phone = text_field(body, "phone_number", required=True)
    assert phone is not None
    if len(phone) > MAX_PHONE_TEXT:
        raise invalid("phone_number", f"phone_number is at most {MAX_PHONE_TEXT} characters")
    numbers = request.app[NUMBERS]
    number = numbers.parse(phone, field="phone_number")
    erasure = await request.app[STORE].erase_caller(
        numbers.spellings(number), account, actor=actor(request)
    )
    return web.json_response(
        {
            "data": {
                "number_key": erasure.number_key,
                "account": erasure.account,
                **erasure.counts(),
            },
            "message": SUCCESS,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register this group's endpoints."""
    app.router.add_get("/v1/audit", list_audit, allow_head=False)
    app.router.add_post("/v1/erasure", erase)
