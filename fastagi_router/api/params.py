"""Reading a request: query parameters and JSON bodies, checked strictly, with errors that
name the parameter or field at fault (never a 500 for bad input)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from aiohttp import web

from fastagi_router.api.errors import ApiError, invalid, missing
from fastagi_router.api.keys import SETTINGS, TOKEN
from fastagi_router.errors import ValidationError
from fastagi_router.model import DEFAULT_ACCOUNT, check_account
from fastagi_router.store.base import Page

T = TypeVar("T")

#: Largest ``limit`` or ``offset`` read (18 digits: well inside SQLite's 64-bit integers).
MAX_INTEGER = 10**18 - 1
_INTEGER = re.compile(r"[0-9]{1,18}")
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})
DEFAULT_LIMIT = 10


class Query:
    """The query string of a request, limited to ``allowed`` names, each given at most once.

    An unknown name is refused (``unknown_parameter``) so that a misspelt filter never
    silently returns something else; so is an empty value (``limit=``, ``account=``): it is
    a client whose variable came out empty, and the default it would get is not what it
    meant to ask for.
    """

    def __init__(self, request: web.Request, allowed: Collection[str]) -> None:
        self.request = request
        query = request.query
        for name in query:
            if name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise ApiError(
                    "unknown_parameter",
                    f"unknown query parameter {name[:40]!r} (known: {known})",
                    field=name[:40],
                )
            if len(query.getall(name)) > 1:
                raise invalid(name, f"{name} is given more than once")
            if query[name] == "":
                raise invalid(name, f"{name} is empty: give a value, or leave it out")
        self._values: Mapping[str, str] = {name: query[name] for name in query}

    def get(self, name: str) -> str | None:
        """The value of ``name``, or None when it is absent."""
        return self._values.get(name)

    def require(self, name: str, what: str = "a value") -> str:
        """The value of ``name``; ``missing_value`` when it is absent or empty."""
        value = self._values.get(name)
        if not value:
            raise missing(name, what)
        return value

    def integer(self, name: str, default: int) -> int:
        """A whole number >= 0; ``default`` when absent."""
        text = self._values.get(name)
        if text is None or text == "":
            return default
        if not _INTEGER.fullmatch(text):
            raise invalid(name, f"{name} must be a whole number from 0, not {text[:20]!r}")
        return int(text)

    def flag(self, name: str, default: bool = False) -> bool:
        """``true``/``false`` (or ``1``/``0``, ``yes``/``no``)."""
        text = self._values.get(name)
        if text is None or text == "":
            return default
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise invalid(name, f"{name} must be true or false, not {text[:20]!r}")

    def page(self) -> tuple[int, int]:
        """``limit`` (default 10, clamped to ``http.max_limit``) and ``offset`` (default 0)."""
        maximum = self.request.app[SETTINGS].http.max_limit
        limit = min(self.integer("limit", DEFAULT_LIMIT), maximum)
        return limit, self.integer("offset", 0)

    def account(self, name: str = "account", *, default: str | None = DEFAULT_ACCOUNT) -> str:
        """The account named by ``name`` (``default`` when absent), checked, and that the
        request's token may use (403 otherwise)."""
        value = self._values.get(name) or default
        if value is None:
            raise missing(name, "an account name")
        return authorize(self.request, check(check_account, value, name))


def page_response(
    page: Page[T], item_json: Callable[[T], dict[str, Any]], limit: int, offset: int
) -> web.Response:
    """A listing's answer: ``{"data", "limit", "offset", "total"}``."""
    return web.json_response(
        {
            "data": [item_json(item) for item in page.items],
            "limit": limit,
            "offset": offset,
            "total": page.total,
        }
    )


def authorize(request: web.Request, account: str) -> str:
    """Return ``account`` if the request's token may use it; raise 403 otherwise."""
    token = request[TOKEN]
    if not token.may_use(account):
        raise ApiError("forbidden", f"this token may not use account {account!r}", field="account")
    return account


def actor(request: web.Request) -> str:
    """Who the audit log says made a write: ``api:`` and the token's name (or the start of
    its hash). The prefix keeps a token named ``cli:root`` from passing for the CLI."""
    return f"api:{request[TOKEN].label}"


def authorize_all(request: web.Request) -> None:
    """Raise 403 unless the request's token may use every account."""
    if request[TOKEN].accounts is not None:
        raise ApiError(
            "forbidden",
            "this token may use only some accounts: name one with the account parameter",
            field="account",
        )


def check(checker: Any, value: str, field: str) -> Any:
    """Run a `fastagi_router.model` check, reporting a failure under ``field``."""
    try:
        return checker(value, field)
    except ValidationError as exc:
        raise invalid(field, exc.message) from exc


async def json_object(request: web.Request, allowed: Collection[str]) -> dict[str, Any]:
    """Read the body as one JSON object whose keys are all in ``allowed``.

    A body over ``http.max_body_bytes`` gets 413 (aiohttp's ``client_max_size``); one that
    is not UTF-8 JSON, not an object, nested too deep or holding a key we do not know, 400.
    """
    data = await request.read()
    if not data.strip():
        raise ApiError("invalid_json", "the request body must be a JSON object, not empty")
    try:
        body = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError("invalid_json", f"the body is not UTF-8: {exc.reason}") from exc
    except ValueError as exc:
        raise ApiError("invalid_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError("invalid_json", "the body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "the request body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise ApiError(
                "unknown_field",
                f"unknown field {key[:40]!r} (known: {', '.join(sorted(allowed))})",
                field=key[:40],
            )
    return body


def text_field(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string field (None when absent or null); 400 when it is another type."""
    value = body.get(name)
    if value is None:
        if required:
            raise missing(name, "a string")
        return None
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string, not {_json_type(value)}")
    if not _encodable(value):
        raise invalid(name, f"{name} holds characters that are not valid Unicode")
    if required and not value.strip():
        raise missing(name, "a non-empty string")
    return value


def bool_field(body: Mapping[str, Any], name: str) -> bool:
    """A boolean field (false when absent or null)."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(name, f"{name} must be true or false, not {_json_type(value)}")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"
