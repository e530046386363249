"""The one shape of every API error: ``{"error": {"code", "message", "field"?}}``.

``code`` is a stable word a client can branch on; ``message`` says what was wrong in words;
``field`` names the parameter or body field at fault, when there is one. Some answers add
keys beside ``error`` (the import adds its per-row report) but never change these three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

#: HTTP status of each error code.
CODES: Mapping[str, int] = {
    "bad_request": 400,
    "invalid_json": 400,
    "invalid_value": 400,
    "missing_value": 400,
    "unknown_field": 400,
    "unknown_parameter": 400,
    "invalid_rows": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "body_too_large": 413,
    "internal": 500,
    "store_unavailable": 503,
}


class ApiError(Exception):
    """An error answer: raised by handlers, turned into JSON by the error middleware."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = CODES[code]
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> web.Response:
        """Return the JSON answer for this error."""
        return error_response(
            self.code, self.message, field=self.field, headers=self.headers, extra=self.extra
        )


def error_response(
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    status: int | None = None,
) -> web.Response:
    """Return ``{"error": {...}}`` (plus ``extra`` keys) with the status of ``code`` (or
    ``status``)."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response(
        {"error": error, **(extra or {})}, status=status or CODES[code], headers=headers
    )


def missing(field: str, what: str = "a value") -> ApiError:
    """A required parameter or field is absent."""
    return ApiError("missing_value", f"{field} is required: give {what}", field=field)


def invalid(field: str, message: str) -> ApiError:
    """A parameter or field has a value that is not acceptable."""
    return ApiError("invalid_value", message, field=field)
