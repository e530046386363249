"""``/v1/customers``: customer records with the fields of the customers CSV, and the import.

A record is ``{"account", "customer_id", "name", "phone_numbers": [...], "code",
"destination1".."destination4", "vip", "oncall"}``; phone numbers come back normalised
(E.164 where they parse as such). An upsert replaces the whole record, numbers and code
included, as a CSV row does.

``POST /v1/customers/import`` takes the CSV itself (`fastagi_router.csvio`) and answers with
a report of every row: ``accepted`` (valid) or ``rejected`` (with its line and the reason).
Nothing is imported when a row is rejected, unless ``partial=true`` asks to import the
accepted rows anyway.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from aiohttp import web

from fastagi_router.api.errors import ApiError, invalid
from fastagi_router.api.keys import NUMBERS, SETTINGS, STORE, TOKEN
from fastagi_router.api.params import (
    Query,
    actor,
    authorize_all,
    bool_field,
    check,
    json_object,
    page_response,
    text_field,
)
from fastagi_router.api.smartrouting import MAX_PHONE_TEXT, SUCCESS
from fastagi_router.csvio import ParsedCSV, RowError, parse_customers
from fastagi_router.errors import ConflictError
from fastagi_router.model import (
    MAX_DESTINATIONS,
    Customer,
    check_code,
    check_customer_id,
    check_name,
    check_token,
)
from fastagi_router.phone import NumberParser

DESTINATIONS = tuple(f"destination{n}" for n in range(1, MAX_DESTINATIONS + 1))
FIELDS = (
    "account",
    "customer_id",
    "name",
    "phone_numbers",
    "code",
    *DESTINATIONS,
    "vip",
    "oncall",
)
MAX_NUMBERS = 100
#: Line of the CSV header: an error there refuses the file even with ``partial=true``.
HEADER_LINE = 1


def customer_json(customer: Customer) -> dict[str, Any]:
    """The JSON form of a customer."""
    return {
        "account": customer.account,
        "customer_id": customer.customer_id,
        "name": customer.name,
        "phone_numbers": list(customer.phone_numbers),
        "code": customer.code,
        **dict(zip(DESTINATIONS, customer.destinations, strict=True)),
        "vip": customer.vip,
        "oncall": customer.oncall,
    }


def customer_from_json(
    body: dict[str, Any], account: str, customer_id: str, numbers: NumberParser
) -> Customer:
    """Build a customer from a request body (every field but the id optional)."""
    for name, expected in (("account", account), ("customer_id", customer_id)):
        given = body.get(name)
        if given is not None and given != expected:
            where = "the path" if name == "customer_id" else "the account parameter"
            raise invalid(name, f"{name} in the body ({str(given)[:40]!r}) differs from {where}")
    name = text_field(body, "name") or ""
    check(check_name, name, "name")
    raw_numbers = body.get("phone_numbers")
    if raw_numbers is None:
        raw_numbers = []
    if not isinstance(raw_numbers, list):
        raise invalid("phone_numbers", "phone_numbers must be an array of strings")
    if len(raw_numbers) > MAX_NUMBERS:
        raise invalid("phone_numbers", f"a customer has at most {MAX_NUMBERS} phone numbers")
    keys: list[str] = []
    for raw in raw_numbers:
        if not isinstance(raw, str) or len(raw) > MAX_PHONE_TEXT:
            raise invalid("phone_numbers", "phone_numbers must be strings of up to 64 characters")
        keys.append(numbers.parse(raw, field="phone_numbers").key)
    code = text_field(body, "code") or None
    if code is not None:
        check(check_code, code, "code")
    destinations: list[str] = []
    for slot in DESTINATIONS:
        value = text_field(body, slot) or ""
        if value:
            check(check_token, value, slot)
        destinations.append(value)
    return Customer(
        account=account,
        customer_id=customer_id,
        name=name,
        phone_numbers=tuple(dict.fromkeys(keys)),
        code=code,
        destinations=(destinations[0], destinations[1], destinations[2], destinations[3]),
        vip=bool_field(body, "vip"),
        oncall=bool_field(body, "oncall"),
    )


def _customer_id(request: web.Request) -> str:
    value: str = check(check_customer_id, request.match_info["customer_id"], "customer_id")
    return value


def _not_found(customer_id: str, account: str) -> ApiError:
    return ApiError(
        "not_found", f"no customer {customer_id!r} in account {account!r}", field="customer_id"
    )


async def list_customers(request: web.Request) -> web.Response:
    """``GET /v1/customers``: every account's customers, or ``account``'s."""
    query = Query(request, ("account", "limit", "offset"))
    account: str | None = None
    if query.get("account") is not None:
        account = query.account()
    else:
        authorize_all(request)
    limit, offset = query.page()
    page = await request.app[STORE].list_customers(account, limit, offset)
    return page_response(page, customer_json, limit, offset)


async def get_customer(request: web.Request) -> web.Response:
    """``GET /v1/customers/{customer_id}``."""
    account = Query(request, ("account",)).account()
    customer_id = _customer_id(request)
    customer = await request.app[STORE].get_customer(account, customer_id)
    if customer is None:
        raise _not_found(customer_id, account)
    return web.json_response(customer_json(customer))


async def _upsert(request: web.Request, body: dict[str, Any], customer_id: str) -> web.Response:
    account = Query(request, ("account",)).account()
    customer = customer_from_json(body, account, customer_id, request.app[NUMBERS])
    stored = await request.app[STORE].upsert_customer(customer, actor=actor(request))
    return web.json_response({"data": customer_json(stored), "message": SUCCESS})


async def put_customer(request: web.Request) -> web.Response:
    """``PUT /v1/customers/{customer_id}``: insert or replace."""
    customer_id = _customer_id(request)
    body = await json_object(request, FIELDS)
    return await _upsert(request, body, customer_id)


async def post_customer(request: web.Request) -> web.Response:
    """``POST /v1/customers``: insert or replace the customer named in the body."""
    body = await json_object(request, FIELDS)
    customer_id = text_field(body, "customer_id", required=True)
    assert customer_id is not None
    return await _upsert(request, body, check(check_customer_id, customer_id, "customer_id"))


async def delete_customer(request: web.Request) -> web.Response:
    """``DELETE /v1/customers/{customer_id}``."""
    account = Query(request, ("account",)).account()
    customer_id = _customer_id(request)
    if not await request.app[STORE].delete_customer(account, customer_id, actor=actor(request)):
        raise _not_found(customer_id, account)
    return web.json_response({"message": SUCCESS})


# -- import -------------------------------------------------------------------------------


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = ApiError(
        "body_too_large",
        f"the CSV is larger than {limit} bytes (http.max_import_bytes)",
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(text: str, numbers: NumberParser) -> ParsedCSV:
    return parse_customers(io.StringIO(text, newline=""), numbers)


class _Report:
    """The per-row answer of an import."""

    def __init__(self, parsed: ParsedCSV) -> None:
        self.customers: list[Customer] = list(parsed.customers)
        self.lines: list[int] = list(parsed.lines)
        self.rejected: list[RowError] = list(parsed.errors)
        self.forbidden = False
        self.conflict: RowError | None = None

    def reject(self, index: int, reason: str, field: str | None) -> RowError:
        error = RowError(self.lines[index], reason, field)
        self.rejected.append(error)
        del self.customers[index]
        del self.lines[index]
        return error

    def body(self, imported: int, partial: bool) -> dict[str, Any]:
        rows: list[dict[str, Any]] = [
            {"line": line, "status": "accepted", "account": c.account, "customer_id": c.customer_id}
            for line, c in zip(self.lines, self.customers, strict=True)
        ]
        for error in self.rejected:
            row: dict[str, Any] = {"line": error.line, "status": "rejected", "reason": error.reason}
            if error.field is not None:
                row["field"] = error.field
            rows.append(row)
        rows.sort(key=lambda r: (r["line"], r["status"]))
        return {
            "imported": imported,
            "accepted": len(self.customers),
            "rejected": len(self.rejected),
            "partial": partial,
            "rows": rows,
        }


async def import_customers(request: web.Request) -> web.Response:
    """``POST /v1/customers/import``: the customers CSV, all rows or (``partial``) the good."""
    partial = Query(request, ("partial",)).flag("partial")
    data = await _read_body(request, request.app[SETTINGS].http.max_import_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            "invalid_rows", f"the CSV is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from exc
    # Parsing a large file is CPU work: off the event loop, so calls keep being routed.
    parsed = await asyncio.to_thread(_parse, text, request.app[NUMBERS])
    report = _Report(parsed)
    token = request[TOKEN]
    for index in reversed(range(len(report.customers))):
        account = report.customers[index].account
        if not token.may_use(account):
            report.reject(index, f"this token may not use account {account!r}", "account")
            report.forbidden = True
    if report.rejected and not partial:
        raise _refused(report, "forbidden" if report.forbidden else "invalid_rows")
    if any(error.line == HEADER_LINE for error in report.rejected):
        # No header, no rows: there is nothing partial to import, and answering 200 would
        # tell a client that sent the wrong file that all went well.
        raise _refused(report, "invalid_rows")
    imported = await _write(request, report, partial)
    return web.json_response({**report.body(imported, partial), "message": SUCCESS})


async def _write(request: web.Request, report: _Report, partial: bool) -> int:
    """Import the accepted rows in one transaction. A row whose number or code belongs to a
    stored customer of another id refuses the file (409), or with ``partial`` is rejected
    and the rest imported."""
    store = request.app[STORE]
    while True:
        try:
            note = f"rejected={len(report.rejected)}" if report.rejected else ""
            return await store.import_customers(report.customers, actor=actor(request), note=note)
        except ConflictError as exc:
            if exc.index is None or not 0 <= exc.index < len(report.customers):
                raise
            report.conflict = report.reject(exc.index, exc.message, exc.field)
            if not partial:
                raise _refused(report, "conflict") from exc


def _refused(report: _Report, code: str) -> ApiError:
    count = len(report.rejected)
    if code == "conflict" and report.conflict is not None:
        message = f"line {report.conflict.line}: {report.conflict.reason}; nothing imported"
    else:
        first = min(report.rejected, key=lambda e: e.line)
        message = (
            f"{count} row(s) rejected, nothing imported (first: line {first.line}: "
            f"{first.reason}); fix them, or send partial=true to import the accepted rows"
        )
    return ApiError(code, message, extra=report.body(0, partial=False))


def add_routes(app: web.Application) -> None:
    """Register this group's endpoints."""
    app.router.add_get("/v1/customers", list_customers, allow_head=False)
    app.router.add_post("/v1/customers", post_customer)
    app.router.add_post("/v1/customers/import", import_customers)
    app.router.add_get("/v1/customers/{customer_id}", get_customer, allow_head=False)
    app.router.add_put("/v1/customers/{customer_id}", put_customer)
    app.router.add_delete("/v1/customers/{customer_id}", delete_customer)
