"""The API's middlewares, outermost first: count, turn every error into JSON, authenticate."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from fastagi_router.api.errors import ApiError, error_response
from fastagi_router.api.keys import METRICS, TOKEN, TOKENS
from fastagi_router.api.tokens import is_token_syntax
from fastagi_router.errors import ConflictError, StoreError, ValidationError
from fastagi_router.logutil import sanitize

log = logging.getLogger("fastagi_router.api")

#: Paths served without a token: probes, the API description and the metrics (which hold
#: counts by fixed words only: no number, account, customer or token; see the README).
PUBLIC = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})
_CHALLENGE = 'Bearer realm="fastagi-router"'
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if request.match_info.http_exception is not None or resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests by method, route pattern (never the raw path) and status."""
    response = await handler(request)
    request.app[METRICS].inc(
        "http_requests_total",
        method=request.method if request.method in _KNOWN_METHODS else "other",
        route=_route_name(request),
        status=str(response.status),
    )
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with ``{"error": {"code", "message", "field"?}}``."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except ConflictError as exc:
        return error_response("conflict", exc.message, field=exc.field)
    except ValidationError as exc:
        return error_response("invalid_value", exc.message, field=exc.field)
    except StoreError as exc:
        log.error("%s %s: store unavailable: %s", request.method, _route_name(request), exc)
        return error_response("store_unavailable", "the store is unavailable; try again")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status)
        if code is None:  # pragma: no cover - another client error raised by aiohttp
            if exc.status >= 500:
                raise
            return error_response("bad_request", exc.reason, status=exc.status)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = {
            "not_found": f"no such endpoint: {sanitize(request.path, 80)} (see /openapi.json)",
            "method_not_allowed": f"{request.method[:10]} is not allowed here",
            "body_too_large": (
                f"the request body is larger than {request.client_max_size} bytes "
                "(http.max_body_bytes)"
            ),
        }[code]
        return error_response(code, message, headers=headers)
    except Exception:
        log.exception("%s %s failed", request.method, _route_name(request))
        return error_response("internal", "internal error (logged)")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``Authorization: Bearer <token>`` outside `PUBLIC`; writes need a write token.

    401 (with ``WWW-Authenticate``) for a missing or unknown token, 403 for a read-only
    token that writes. Which accounts a token may use is checked by each endpoint.
    """
    if _route_name(request) in PUBLIC | {"unmatched"}:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if not header.strip():
        raise ApiError(
            "unauthorized",
            "an API token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    spec = None
    if scheme.lower() == "bearer" and is_token_syntax(credentials):
        spec = request.app[TOKENS].find(credentials)
    if spec is None:
        raise ApiError(
            "unauthorized",
            "the API token is not valid (expected Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    if request.method not in _READ_METHODS and not spec.write:
        raise ApiError("forbidden", "this token may only read")
    request[TOKEN] = spec
    return await handler(request)
