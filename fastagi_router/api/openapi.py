"""The OpenAPI 3.1 description of the REST API, written by hand as data.

``tests/api/test_openapi.py`` holds it to the running application: every route of the app
is here with its methods, every path here is served, the patterns match the checks of
`fastagi_router.model`, and every response the API tests receive validates against the
schema documented for its status. Change this document with the endpoints.
"""

from __future__ import annotations

import copy
from typing import Any

from fastagi_router import __version__
from fastagi_router.api.errors import CODES
from fastagi_router.api.params import MAX_INTEGER

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: A plain dialplan token (agent extensions, destination queues), not a credential.
TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@/+-]{0,79}$"  # noqa: S105
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
CODE_PATTERN = r"^[0-9*]{1,32}$"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"

_DESCRIPTION = """\
Manage the smart-routing table (sticky agents) and the customer records of fastagi-router,
and look customers up, over HTTP. The same store serves the FastAGI side, so a change made
here applies to the very next call.

Two APIs are served as their documents define them:

* `/v1/smartrouting`: the smart-routing API (list, get by id or phone number, insert or
  update, delete). Ids are integers in every response: the original document shows `"1"`
  in one place and `1` in another. Every record carries both `agent` (what the insert takes)
  and `description` (what the original listing shows: a free-text note that defaults to the
  agent), plus `account`, `number_key`, `origin`, `created_at`, `updated_at` and
  `last_seen_at`. In a path, one to six digits without a leading zero is an id; anything
  else is a phone number, and every form of a number finds the same record.
* `/api/v1/smartRoutings`: the Encom customer lookup (by number, `format=json|raw`).
  Extensions of this product beyond that document: lookup by identification code (`code`),
  the `destination=1..4` selector's name, the `vip` and `astreinte` booleans in json, and
  404 when no customer matches.

`/v1/customers` manages customer records with the fields of the customers CSV, and imports
that CSV. `/v1/audit` lists who changed what and when (this API, the command line, the
expiry of learned routes); `/v1/erasure` removes a caller's number from everything the
router keeps. Every error has the shape `{"error": {"code", "message", "field"?}}`.

Authentication: `Authorization: Bearer <token>`. A token may use some accounts or all, and
may read or also write. 401 (with `WWW-Authenticate`) for a missing or unknown token; 403 for
an account the token may not use, or a read-only token that writes. `/healthz`, `/readyz`,
`/metrics` and this document need no token.
"""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _responses(ok: dict[str, Any], *errors: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for status in errors:
        responses[status] = {"$ref": f"#/components/responses/{_RESPONSE_NAMES[status]}"}
    return responses


_RESPONSE_NAMES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "TooLarge",
    "503": "StoreUnavailable",
}
_READ_ERRORS = ("400", "401", "403", "503")

_ACCOUNT_PARAM = {
    "name": "account",
    "in": "query",
    "required": False,
    "description": "The account (default `default`). The token must be allowed to use it.",
    "schema": {"type": "string", "pattern": ACCOUNT_PATTERN, "default": "default"},
}
_PAGE_PARAMS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Records per page (default 10). A limit above the server's maximum "
        "(`http.max_limit`, 1000 by default) is clamped; the response's `limit` says the "
        "limit applied. Not a whole number from 0, or over 18 digits: 400.",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 10},
    },
    {
        "name": "offset",
        "in": "query",
        "required": False,
        "description": "Records to skip (default 0).",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0},
    },
]
_KEY_PARAM = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "An id (one to six digits without a leading zero) or a phone number in "
    "any accepted form (`0899990988`, `+84899990988`, `0084899990988`, ...). A route whose "
    "number is itself one to six digits (an internal extension) is reached by its id.",
    "schema": {"type": "string", "minLength": 1},
}
_CUSTOMER_ID_PARAM = {
    "name": "customer_id",
    "in": "path",
    "required": True,
    "description": "The customer id. A customer whose id is `import` is read, replaced and "
    "deleted here too: only POST on `/v1/customers/import` is the CSV import (so an OPTIONS "
    "or a 405 there lists GET, PUT, DELETE and POST).",
    "schema": {"type": "string", "pattern": CUSTOMER_ID_PATTERN},
}

_ROUTE = {
    "type": "object",
    "description": "A smart-routing (sticky agent) record.",
    "required": [
        "id",
        "account",
        "phone_number",
        "number_key",
        "agent",
        "description",
        "origin",
        "created_at",
        "updated_at",
        "last_seen_at",
    ],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1, "description": "Always an integer."},
        "account": {"type": "string", "pattern": ACCOUNT_PATTERN},
        "phone_number": {"type": "string", "description": "The number as it was given."},
        "number_key": {
            "type": "string",
            "description": "The number normalised (E.164 when it is a possible number).",
        },
        "agent": {"type": "string", "pattern": TOKEN_PATTERN},
        "description": {"type": "string", "maxLength": 200},
        "origin": {
            "enum": ["manual", "learned"],
            "description": "`manual` (CLI, API) or `learned` (from the Manager events).",
        },
        "created_at": {"type": "string", "pattern": TIMESTAMP_PATTERN, "description": "UTC."},
        "updated_at": {"type": "string", "pattern": TIMESTAMP_PATTERN, "description": "UTC."},
        "last_seen_at": {
            "type": ["string", "null"],
            "pattern": TIMESTAMP_PATTERN,
            "description": "When a call last confirmed a learned route (UTC); null for others.",
        },
    },
}

_DESTINATION = {"type": "string", "pattern": r"^$|" + TOKEN_PATTERN}

_CUSTOMER_FIELDS: dict[str, Any] = {
    "account": {"type": "string", "pattern": ACCOUNT_PATTERN},
    "customer_id": {"type": "string", "pattern": CUSTOMER_ID_PATTERN},
    "name": {"type": "string", "maxLength": 200},
    "phone_numbers": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
    "code": {"type": ["string", "null"], "pattern": CODE_PATTERN},
    **{f"destination{n}": _DESTINATION for n in range(1, 5)},
    "vip": {"type": "boolean"},
    "oncall": {"type": "boolean", "description": "On-call contract (astreinte)."},
}

_CUSTOMER = {
    "type": "object",
    "description": "A customer record: the fields of the customers CSV. Phone numbers are "
    "normalised (E.164 where possible).",
    "required": list(_CUSTOMER_FIELDS),
    "additionalProperties": False,
    "properties": _CUSTOMER_FIELDS,
}

_CUSTOMER_INPUT = {
    "type": "object",
    "description": "A customer to insert or replace: fields left out (or null) take their "
    "empty value (no numbers, no code, unused destinations, false flags). `account` and "
    "`customer_id`, when given, must match the account parameter and the path.",
    "additionalProperties": False,
    "properties": {
        **_CUSTOMER_FIELDS,
        # null, like absent: the account parameter and the path apply.
        "account": {"type": ["string", "null"], "pattern": ACCOUNT_PATTERN},
        "customer_id": {"type": ["string", "null"], "pattern": CUSTOMER_ID_PATTERN},
        "phone_numbers": {
            "type": ["array", "null"],
            "items": {"type": "string", "maxLength": 64},
            "maxItems": 100,
        },
        "name": {"type": ["string", "null"], "maxLength": 200},
        "code": {"type": ["string", "null"], "pattern": r"^$|" + CODE_PATTERN},
        **{f"destination{n}": {**_DESTINATION, "type": ["string", "null"]} for n in range(1, 5)},
        "vip": {"type": ["boolean", "null"]},
        "oncall": {"type": ["boolean", "null"]},
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "fastagi-router REST API",
        "version": __version__,
        "description": _DESCRIPTION,
    },
    "security": [{"bearer": []}],
    "tags": [
        {"name": "smartrouting", "description": "The smart-routing (sticky agent) table."},
        {"name": "customers", "description": "Customer records and the CSV import."},
        {"name": "lookup", "description": "The customer lookup (Encom customer API)."},
        {"name": "audit", "description": "Who changed what, and when."},
        {"name": "privacy", "description": "A caller's data, erased."},
        {"name": "operations", "description": "Probes, metrics and this document."},
    ],
    "paths": {
        "/v1/smartrouting": {
            "get": {
                "operationId": "listSmartRoutings",
                "tags": ["smartrouting"],
                "summary": "List the records of an account, by id.",
                "parameters": [_ACCOUNT_PARAM, *_PAGE_PARAMS],
                "responses": _responses(
                    _json(_ref("RouteList"), "One page of records."), *_READ_ERRORS
                ),
            },
            "post": {
                "operationId": "upsertSmartRouting",
                "tags": ["smartrouting"],
                "summary": "Insert a record, or update the record of that number.",
                "parameters": [_ACCOUNT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RouteInput")}},
                },
                "responses": _responses(
                    _json(_ref("RouteSaved"), "The record as stored."),
                    "400",
                    "401",
                    "403",
                    "413",
                    "503",
                ),
            },
        },
        "/v1/smartrouting/{key}": {
            "parameters": [_KEY_PARAM],
            "get": {
                "operationId": "getSmartRouting",
                "tags": ["smartrouting"],
                "summary": "One record, by id or phone number.",
                "parameters": [_ACCOUNT_PARAM],
                "responses": _responses(_json(_ref("Route"), "The record."), *_READ_ERRORS, "404"),
            },
            "delete": {
                "operationId": "deleteSmartRouting",
                "tags": ["smartrouting"],
                "summary": "Delete one record, by id or phone number.",
                "parameters": [_ACCOUNT_PARAM],
                "responses": _responses(_json(_ref("Message"), "Deleted."), *_READ_ERRORS, "404"),
            },
        },
        "/api/v1/smartRoutings": {
            "get": {
                "operationId": "lookupCustomer",
                "tags": ["lookup"],
                "summary": "The destinations of the customer calling from a number, or "
                "identified by a code.",
                "description": "From the Encom customer API: `customerAccount`, `number`, "
                "`format` and the 400/403 answers. Extensions: `code`, the `destination` "
                "selector's name, `vip`/`astreinte` in json, 404. The answer is what a call "
                "of that account would get: the account's own customer, else one of the "
                "account `default`.",
                "parameters": [
                    {
                        "name": "customerAccount",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": ACCOUNT_PATTERN},
                    },
                    {
                        "name": "number",
                        "in": "query",
                        "required": False,
                        "description": "The caller's number, any accepted form. Exactly one "
                        "of number and code.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                    },
                    {
                        "name": "code",
                        "in": "query",
                        "required": False,
                        "description": "An identification code (extension of this product).",
                        "schema": {"type": "string", "pattern": CODE_PATTERN},
                    },
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["json", "raw"], "default": "json"},
                    },
                    {
                        "name": "destination",
                        "in": "query",
                        "required": False,
                        "description": "Return only this destination.",
                        "schema": {"enum": ["1", "2", "3", "4"]},
                    },
                ],
                "responses": _responses(
                    {
                        "description": "json: `destination1`..`destination4` (or only the "
                        "selected one) with `vip` and `astreinte`; raw: the four destinations "
                        "comma-separated in their slots (`207,209,214,216`; an unused one is "
                        "empty), or only the selected one.",
                        "content": {
                            "application/json": {"schema": _ref("Lookup")},
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    *_READ_ERRORS,
                    "404",
                ),
            }
        },
        "/v1/customers": {
            "get": {
                "operationId": "listCustomers",
                "tags": ["customers"],
                "summary": "List customers, of every account or of one.",
                "parameters": [
                    {
                        **_ACCOUNT_PARAM,
                        "description": "Only this account's customers. Without it, every "
                        "account's: only for a token allowed on every account (else 403).",
                        "schema": {"type": "string", "pattern": ACCOUNT_PATTERN},
                    },
                    *_PAGE_PARAMS,
                ],
                "responses": _responses(
                    _json(_ref("CustomerList"), "One page of customers, by account and id."),
                    *_READ_ERRORS,
                ),
            },
            "post": {
                "operationId": "postCustomer",
                "tags": ["customers"],
                "summary": "Insert or replace the customer named by `customer_id` in the body.",
                "parameters": [_ACCOUNT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "allOf": [_ref("CustomerInput")],
                                "required": ["customer_id"],
                                "properties": {
                                    "customer_id": {
                                        "type": "string",
                                        "pattern": CUSTOMER_ID_PATTERN,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": _responses(
                    _json(_ref("CustomerSaved"), "The customer as stored."),
                    "400",
                    "401",
                    "403",
                    "409",
                    "413",
                    "503",
                ),
            },
        },
        "/v1/customers/import": {
            "post": {
                "operationId": "importCustomers",
                "tags": ["customers"],
                "summary": "Import the customers CSV, with a report of every row.",
                "description": "The body is the customers CSV (the columns of the CLI's "
                "import; UTF-8, a BOM accepted), up to `http.max_import_bytes`. Every row is "
                "checked first. Any rejected row (bad field, repeated id, number or code, an "
                "account the token may not use, a number or code that belongs to another "
                "stored customer) refuses the whole file and nothing is imported, unless "
                "`partial=true`: then the accepted rows are imported and the others "
                "reported. Rows carry their account (an empty one is `default`).",
                "parameters": [
                    {
                        "name": "partial",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean", "default": False},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": _json(_ref("ImportReport"), "Imported (all rows, or the accepted)."),
                    "400": _json(
                        {"anyOf": [_ref("ImportRefused"), _ref("Error")]},
                        "Rows rejected (`invalid_rows`), the file is not UTF-8, or its "
                        "header is missing or wrong (even with `partial=true`); nothing "
                        "imported. Also `unknown_parameter`/`invalid_value` for the query.",
                    ),
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": _json(
                        {"anyOf": [_ref("ImportRefused"), _ref("Error")]},
                        "A read-only token, or rows of accounts the token may not use; "
                        "nothing imported.",
                    ),
                    "409": _json(
                        _ref("ImportRefused"),
                        "A number or code belongs to another stored customer; nothing imported.",
                    ),
                    "413": {"$ref": "#/components/responses/TooLarge"},
                    "503": {"$ref": "#/components/responses/StoreUnavailable"},
                },
            }
        },
        "/v1/customers/{customer_id}": {
            "parameters": [_CUSTOMER_ID_PARAM],
            "get": {
                "operationId": "getCustomer",
                "tags": ["customers"],
                "summary": "One customer.",
                "parameters": [_ACCOUNT_PARAM],
                "responses": _responses(
                    _json(_ref("Customer"), "The customer."), *_READ_ERRORS, "404"
                ),
            },
            "put": {
                "operationId": "putCustomer",
                "tags": ["customers"],
                "summary": "Insert or replace one customer.",
                "parameters": [_ACCOUNT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CustomerInput")}},
                },
                "responses": _responses(
                    _json(_ref("CustomerSaved"), "The customer as stored."),
                    "400",
                    "401",
                    "403",
                    "409",
                    "413",
                    "503",
                ),
            },
            "delete": {
                "operationId": "deleteCustomer",
                "tags": ["customers"],
                "summary": "Delete one customer, with its numbers and code.",
                "parameters": [_ACCOUNT_PARAM],
                "responses": _responses(_json(_ref("Message"), "Deleted."), *_READ_ERRORS, "404"),
            },
        },
        "/v1/audit": {
            "get": {
                "operationId": "listAudit",
                "tags": ["audit"],
                "summary": "The audit log: every write through this API and the command line, "
                "and the system's purges, newest first.",
                "description": "Only entries of the accounts the token may use; without "
                "`account`, every one of them (entries that span every account, such as an "
                "erasure in all accounts or a cache purge of all, only for a token of every "
                "account). Entries older than `audit.retention_days` are deleted.",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "description": "From this UTC time, included: `YYYY-MM-DD`, "
                        "`YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SSZ`.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "required": False,
                        "description": "Before this UTC time, excluded (same forms).",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "actor",
                        "in": "query",
                        "required": False,
                        "description": "Only this actor, as listed: `api:<token name>`, "
                        "`cli:<OS user>`, `system:expiry`.",
                        "schema": {"type": "string", "maxLength": 100},
                    },
                    {
                        "name": "action",
                        "in": "query",
                        "required": False,
                        "description": "Only this action, as listed (`route.create`, "
                        "`customer.delete`, `caller.erase`, ...).",
                        "schema": {"type": "string", "maxLength": 40},
                    },
                    {
                        **_ACCOUNT_PARAM,
                        "description": "Only this account's entries (the token must be "
                        "allowed to use it).",
                        "schema": {"type": "string", "pattern": ACCOUNT_PATTERN},
                    },
                    *_PAGE_PARAMS,
                ],
                "responses": _responses(
                    _json(_ref("AuditList"), "One page of entries, newest first."),
                    *_READ_ERRORS,
                ),
            }
        },
        "/v1/erasure": {
            "post": {
                "operationId": "eraseCaller",
                "tags": ["privacy"],
                "summary": "Erase a caller's number from everything the router keeps.",
                "description": "The number (any accepted form; every spelling of it is "
                "found) is removed, in one transaction: its routes, the number from customer "
                "records (a record left without any number is deleted: it was that "
                "caller's), the upstream API's cached answers for it, and the number where "
                "it is the target of an audit entry (replaced by `[erased]`). In `account`, "
                "or in every account without it (a token of every account only). The "
                "erasure is audited, without the number. The next call does not see the "
                "erased data, in any worker. Erasing a number the router does not know "
                "answers 200 with zero counts. The number is in the body so that it does "
                "not reach access logs.",
                "parameters": [
                    {
                        **_ACCOUNT_PARAM,
                        "description": "Only this account. Without it, every account (the "
                        "token must be allowed on every account).",
                        "schema": {"type": "string", "pattern": ACCOUNT_PATTERN},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ErasureInput")}},
                },
                "responses": _responses(
                    _json(_ref("ErasureDone"), "What was removed."),
                    "400",
                    "401",
                    "403",
                    "413",
                    "503",
                ),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "The process is alive.",
                "security": [],
                "responses": {"200": _json(_ref("Status"), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "The store answers.",
                "security": [],
                "responses": {
                    "200": _json(_ref("Status"), "Ready."),
                    "503": {"$ref": "#/components/responses/StoreUnavailable"},
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Metrics in the Prometheus text format, or OpenMetrics.",
                "description": "No token needed: the metrics are counts labelled with fixed "
                "words (status, reason, source, outcome, method, route pattern, status "
                "code), never a number, account, customer or token.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format 0.0.4; OpenMetrics "
                        "1.0 when the Accept header asks for application/openmetrics-text.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["operations"],
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token configured in `api.tokens` (as its hash) or "
                "`FASTAGI_ROUTER_API_TOKEN`, or the one generated at start-up.",
            }
        },
        "responses": {
            "BadRequest": _error(
                "The request is malformed: a parameter or field is missing, unknown or "
                "invalid (`field` names it), or the body is not a JSON object."
            ),
            "Unauthorized": {
                **_error("No token, or not a valid one."),
                "headers": {
                    "WWW-Authenticate": {
                        "description": '`Bearer realm="fastagi-router"`, with '
                        '`error="invalid_token"` when a token was given.',
                        "schema": {"type": "string"},
                    }
                },
            },
            "Forbidden": _error(
                "The token may not use this account, or may only read and this is a write."
            ),
            "NotFound": _error("No such record (or no customer matches)."),
            "Conflict": _error(
                "A phone number or code already belongs to another customer of the account."
            ),
            "TooLarge": _error("The body is over the size limit (`http.max_body_bytes`)."),
            "StoreUnavailable": _error("The store cannot answer; retry."),
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"enum": sorted(CODES)},
                            "message": {"type": "string"},
                            "field": {"type": "string"},
                        },
                    }
                },
            },
            "Route": _ROUTE,
            "RouteList": {
                "type": "object",
                "required": ["data", "limit", "offset", "total"],
                "additionalProperties": False,
                "properties": {
                    "data": {"type": "array", "items": _ref("Route")},
                    "limit": {"type": "integer", "minimum": 0, "description": "As applied."},
                    "offset": {"type": "integer", "minimum": 0},
                    "total": {"type": "integer", "minimum": 0},
                },
            },
            "RouteInput": {
                "type": "object",
                "required": ["phone_number", "agent"],
                "additionalProperties": False,
                "properties": {
                    "phone_number": {"type": "string", "minLength": 1, "maxLength": 64},
                    "agent": {
                        "type": "string",
                        "pattern": TOKEN_PATTERN,
                        "description": "The extension that gets the number's calls first: a "
                        "plain dialplan token (letters, digits, `_ . @ / + -`, up to 80).",
                    },
                    "description": {
                        "type": ["string", "null"],
                        "maxLength": 200,
                        "description": "A free-text note (default: the agent).",
                    },
                },
            },
            "RouteSaved": {
                "type": "object",
                "required": ["data", "message"],
                "additionalProperties": False,
                "properties": {
                    "data": _ref("Route"),
                    "message": {"const": "successfully"},
                },
            },
            "Message": {
                "type": "object",
                "required": ["message"],
                "additionalProperties": False,
                "properties": {"message": {"const": "successfully"}},
            },
            "Customer": _CUSTOMER,
            "CustomerInput": _CUSTOMER_INPUT,
            "CustomerList": {
                "type": "object",
                "required": ["data", "limit", "offset", "total"],
                "additionalProperties": False,
                "properties": {
                    "data": {"type": "array", "items": _ref("Customer")},
                    "limit": {"type": "integer", "minimum": 0},
                    "offset": {"type": "integer", "minimum": 0},
                    "total": {"type": "integer", "minimum": 0},
                },
            },
            "CustomerSaved": {
                "type": "object",
                "required": ["data", "message"],
                "additionalProperties": False,
                "properties": {
                    "data": _ref("Customer"),
                    "message": {"const": "successfully"},
                },
            },
            "ImportRow": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["line", "status", "account", "customer_id"],
                        "additionalProperties": False,
                        "properties": {
                            "line": {"type": "integer", "minimum": 2},
                            "status": {"const": "accepted"},
                            "account": {"type": "string"},
                            "customer_id": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["line", "status", "reason"],
                        "additionalProperties": False,
                        "properties": {
                            "line": {"type": "integer", "minimum": 1},
                            "status": {"const": "rejected"},
                            "reason": {"type": "string"},
                            "field": {"type": "string"},
                        },
                    },
                ]
            },
            "ImportCounts": {
                "type": "object",
                "description": "`accepted` rows are valid; `imported` is how many were "
                "written (0 when the file was refused).",
                "required": ["imported", "accepted", "rejected", "partial", "rows"],
                "properties": {
                    "imported": {"type": "integer", "minimum": 0},
                    "accepted": {"type": "integer", "minimum": 0},
                    "rejected": {"type": "integer", "minimum": 0},
                    "partial": {"type": "boolean"},
                    "rows": {"type": "array", "items": _ref("ImportRow")},
                },
            },
            "ImportReport": {
                "allOf": [_ref("ImportCounts")],
                "required": ["message"],
                "properties": {"message": {"const": "successfully"}},
            },
            "ImportRefused": {"allOf": [_ref("Error"), _ref("ImportCounts")]},
            "Lookup": {
                "type": "object",
                "description": "`destination1`..`destination4` as in the Encom document (only "
                "the selected one with `destination`), plus this product's `vip` and "
                "`astreinte` (on-call contract).",
                "required": ["vip", "astreinte"],
                "minProperties": 3,
                "additionalProperties": False,
                "properties": {
                    **{f"destination{n}": {"type": "string"} for n in range(1, 5)},
                    "vip": {"type": "boolean"},
                    "astreinte": {"type": "boolean"},
                },
            },
            "AuditEntry": {
                "type": "object",
                "required": ["id", "at", "actor", "action", "account", "target", "detail"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "at": {"type": "string", "pattern": TIMESTAMP_PATTERN, "description": "UTC."},
                    "actor": {
                        "type": "string",
                        "description": "`api:<token name>`, `cli:<OS user>` or `system:<task>`.",
                    },
                    "action": {"type": "string"},
                    "account": {
                        "type": ["string", "null"],
                        "description": "null: the write spanned every account.",
                    },
                    "target": {
                        "type": "string",
                        "description": "A number key (`[erased]` after an erasure), a "
                        "customer id, or empty.",
                    },
                    "detail": {
                        "type": "string",
                        "maxLength": 200,
                        "description": "A short summary (counts, the agent); never a phone "
                        "number nor a code.",
                    },
                },
            },
            "AuditList": {
                "type": "object",
                "required": ["data", "limit", "offset", "total"],
                "additionalProperties": False,
                "properties": {
                    "data": {"type": "array", "items": _ref("AuditEntry")},
                    "limit": {"type": "integer", "minimum": 0},
                    "offset": {"type": "integer", "minimum": 0},
                    "total": {"type": "integer", "minimum": 0},
                },
            },
            "ErasureInput": {
                "type": "object",
                "required": ["phone_number"],
                "additionalProperties": False,
                "properties": {
                    "phone_number": {"type": "string", "minLength": 1, "maxLength": 64},
                },
            },
            "ErasureDone": {
                "type": "object",
                "required": ["data", "message"],
                "additionalProperties": False,
                "properties": {
                    "data": {
                        "type": "object",
                        "required": [
                            "number_key",
                            "account",
                            "routes",
                            "customer_numbers",
                            "customers",
                            "cache_entries",
                            "audit_entries",
                        ],
                        "additionalProperties": False,
                        "properties": {
                            "number_key": {"type": "string"},
                            "account": {"type": ["string", "null"]},
                            **{
                                name: {"type": "integer", "minimum": 0}
                                for name in (
                                    "routes",
                                    "customer_numbers",
                                    "customers",
                                    "cache_entries",
                                    "audit_entries",
                                )
                            },
                        },
                    },
                    "message": {"const": "successfully"},
                },
            },
            "Status": {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {"status": {"enum": ["alive", "ready"]}},
            },
        },
    },
}


def document() -> dict[str, Any]:
    """Return a copy of the OpenAPI document."""
    return copy.deepcopy(_DOCUMENT)
