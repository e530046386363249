"""The upstream customer API client: `UpstreamClient` over one narrow `Transport` seam.

The API (``GET {base}/api/v1/smartRoutings?customerAccount=...&number=...&format=json``,
bearer token) answers ``destination1``..``destination4`` and, under configurable names, the
VIP and on-call flags. `UpstreamClient` builds the request and reads the answer; the
`Transport` only moves bytes: `AiohttpTransport` does it with one pooled aiohttp session and
translates aiohttp's exceptions into the errors of `fastagi_router.upstream.errors`, so
nothing above it ever sees an aiohttp type.

What an answer means::

    200 with destinations        the customer
    200 empty ({} null [] "")    not found, as is 200 with no destination at all
    204, 404                     not found
    400                          UpstreamBadRequest    (our request is wrong; not retried)
    401, 403                     UpstreamDenied        (the token lacks the account)
    3xx, 429, 5xx, other         UpstreamUnavailable   (redirects are not followed)
    200 that is not JSON         UpstreamBadAnswer     (an HTML page, truncated, too large)

Destinations go to ``Dial()``/``Queue()``: each must pass `check_token`; one that does not
is dropped (and logged), never passed on. The token is sent in a header and never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import phonenumbers

from fastagi_router.config import UpstreamSettings
from fastagi_router.errors import ValidationError
from fastagi_router.logutil import sanitize
from fastagi_router.model import MAX_DESTINATIONS, Customer, check_token
from fastagi_router.phone import CallerNumber
from fastagi_router.upstream.errors import (
    UpstreamBadAnswer,
    UpstreamBadRequest,
    UpstreamDenied,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger("fastagi_router.upstream")

ENDPOINT = "/api/v1/smartRoutings"
#: Largest answer read; the documented one is under 100 bytes.
MAX_BODY = 64 * 1024
_TRUE = frozenset({"1", "true", "yes", "y", "on", "oui", "o", "vrai"})
_SNIPPET = 120


@dataclass(frozen=True, slots=True)
class HTTPAnswer:
    """What came back, before any interpretation."""

    status: int
    content_type: str
    body: bytes


class Transport(Protocol):
    """Sends one GET to the API endpoint; the only place that does network I/O."""

    async def get(self, params: Sequence[tuple[str, str]], timeout: float) -> HTTPAnswer:
        """Return the answer to ``GET endpoint?params`` within ``timeout`` seconds.

        Raises `UpstreamTimeout`, `UpstreamUnavailable` (refused, reset, cut short) or
        `UpstreamBadAnswer` (larger than the limit); never an exception of the HTTP library.
        """
        ...

    async def close(self) -> None:
        """Release the connections."""
        ...


def endpoint_url(base: str) -> str:
    """Return the lookup URL for ``upstream.url`` (which may already name the endpoint)."""
    base = base.rstrip("/")
    return base if base.endswith(ENDPOINT) else base + ENDPOINT


class AiohttpTransport:
    """`Transport` over one aiohttp `ClientSession` with a bounded connection pool.

    Create it inside the event loop with `AiohttpTransport.open`; `close` it when done.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, *, max_body: int) -> None:
        self._session = session
        self._url = url
        self._max_body = max_body

    @classmethod
    def open(
        cls, base_url: str, token: str, *, max_connections: int, max_body: int = MAX_BODY
    ) -> AiohttpTransport:
        """Return a transport to ``base_url``'s endpoint, sending ``token`` as bearer."""
        connector = aiohttp.TCPConnector(
            limit=max_connections, limit_per_host=max_connections, ttl_dns_cache=60
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            raise_for_status=False,
            # Proxies from the environment would be a surprise on a telephony server.
            trust_env=False,
        )
        return cls(session, endpoint_url(base_url), max_body=max_body)

    async def get(self, params: Sequence[tuple[str, str]], timeout: float) -> HTTPAnswer:
        """See `Transport.get`."""
        try:
            async with asyncio.timeout(timeout):
                async with self._session.get(
                    self._url,
                    params=list(params),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    body = await self._read(response)
                    return HTTPAnswer(
                        response.status, response.headers.get("Content-Type", ""), body
                    )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {timeout * 1000:.0f} ms") from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamUnavailable(f"the answer was cut short: {_describe(exc)}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"cannot reach the API: {_describe(exc)}") from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        if response.content_length is not None and response.content_length > self._max_body:
            raise UpstreamBadAnswer(f"answer of {response.content_length} bytes is too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_body:
                raise UpstreamBadAnswer(f"answer larger than {self._max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        """See `Transport.close`."""
        await self._session.close()


def _describe(exc: BaseException) -> str:
    return sanitize(str(exc) or type(exc).__name__)


@dataclass(frozen=True, slots=True)
class Fields:
    """How the API names things: query parameters and answer fields."""

    number_param: str = "number"
    code_param: str = "code"
    number_format: str = "international"
    vip_field: str = "vip"
    oncall_field: str = "astreinte"

    @classmethod
    def from_settings(cls, settings: UpstreamSettings) -> Fields:
        """Return the names configured in ``settings``."""
        return cls(
            number_param=settings.number_param,
            code_param=settings.code_param,
            number_format=settings.number_format,
            vip_field=settings.vip_field,
            oncall_field=settings.oncall_field,
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """What a 200 said: the customer (None: not found) and the values that were dropped."""

    customer: Customer | None
    dropped: tuple[tuple[str, str], ...] = field(default=())


class UpstreamClient:
    """Asks the API about one caller number or one code. Holds no state between requests."""

    def __init__(self, transport: Transport, fields: Fields) -> None:
        self.transport = transport
        self.fields = fields

    def api_number(self, number: CallerNumber) -> str:
        """Return ``number`` written as the API expects (``number_format``).

        A number that did not parse (an internal extension) is sent as the digits received.
        """
        if number.e164 is None:
            return number.key
        if self.fields.number_format == "e164":
            return number.e164
        if self.fields.number_format == "national":
            parsed = phonenumbers.parse(number.e164, None)
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            return "".join(c for c in national if c.isdigit())
        return "00" + number.e164[1:]

    async def by_number(
        self, account: str, number: CallerNumber, *, timeout: float, tag: str = "-"
    ) -> Customer | None:
        """Return the customer calling from ``number`` in ``account``, or None if unknown.

        Raises an `UpstreamError` (see `fastagi_router.upstream.errors`) when the API fails.
        """
        answer = await self._ask(
            account, self.fields.number_param, self.api_number(number), timeout
        )
        customer = answer.customer
        self._log_dropped(answer, account, tag)
        if customer is not None:
            customer = dataclasses.replace(customer, phone_numbers=(number.key,))
        return customer

    async def by_code(
        self, account: str, code: str, *, timeout: float, tag: str = "-"
    ) -> Customer | None:
        """Return the customer whose identification code is ``code``, or None if unknown.

        Raises an `UpstreamError` when the API fails.
        """
        answer = await self._ask(account, self.fields.code_param, code, timeout)
        self._log_dropped(answer, account, tag)
        return dataclasses.replace(answer.customer, code=code) if answer.customer else None

    async def _ask(self, account: str, param: str, value: str, timeout: float) -> Answer:
        params = [("customerAccount", account), (param, value), ("format", "json")]
        http = await self.transport.get(params, timeout)
        return interpret(http, account, self.fields)

    @staticmethod
    def _log_dropped(answer: Answer, account: str, tag: str) -> None:
        for name, value in answer.dropped:
            log.warning(
                "[%s] upstream API: dropped %s=%s for account %s: not a plain dialplan token",
                sanitize(tag),
                name,
                sanitize(repr(value), 60),
                sanitize(account),
            )


def interpret(http: HTTPAnswer, account: str, fields: Fields) -> Answer:
    """Return what ``http`` says about the caller (pure: no I/O).

    Raises `UpstreamBadRequest`, `UpstreamDenied`, `UpstreamUnavailable` or
    `UpstreamBadAnswer` according to the table in this module's docstring.
    """
    status = http.status
    if status in (204, 404):
        return Answer(None)
    if status == 400:
        raise UpstreamBadRequest(f"400 bad request: {_snippet(http.body)}")
    if status in (401, 403):
        raise UpstreamDenied(
            f"{status}: the token is not allowed account {sanitize(account)}", status=status
        )
    if status != 200:
        raise UpstreamUnavailable(f"status {status}: {_snippet(http.body)}", status=status)
    if not http.body.strip():
        return Answer(None)
    try:
        data = json.loads(http.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamBadAnswer(
            f"not JSON ({sanitize(http.content_type) or 'no content type'}): {_snippet(http.body)}"
        ) from exc
    if data in (None, [], ""):
        return Answer(None)
    if not isinstance(data, dict):
        raise UpstreamBadAnswer(f"a JSON {type(data).__name__}, not an object")
    return _customer(data, account, fields)


def _customer(data: dict[str, Any], account: str, fields: Fields) -> Answer:
    kept: list[str] = []
    dropped: list[tuple[str, str]] = []
    present = False
    for n in range(1, MAX_DESTINATIONS + 1):
        name = f"destination{n}"
        raw = data.get(name)
        if raw is None or raw == "":
            continue
        present = True
        plain = isinstance(raw, str | int) and not isinstance(raw, bool)
        try:
            kept.append(check_token(str(raw).strip() if plain else repr(raw), name))
        except ValidationError:
            dropped.append((name, str(raw)))
    if not present:
        return Answer(None, tuple(dropped))
    # Dropping one closes the gap, so that a dialplan stopping at the first empty DESTn
    # still reaches the next one; the order is kept.
    slots = (*kept, "", "", "", "")
    customer = Customer(
        account=account,
        customer_id=account,
        destinations=(slots[0], slots[1], slots[2], slots[3]),
        vip=_flag(data.get(fields.vip_field)),
        oncall=_flag(data.get(fields.oncall_field)),
    )
    return Answer(customer, tuple(dropped))


def _flag(value: Any) -> bool:
    """Read a flag leniently: true, 1, "1", "yes", "oui", "true" are true; anything else not."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return False


def _snippet(body: bytes) -> str:
    return sanitize(body[:_SNIPPET].decode("utf-8", "replace"), _SNIPPET) or "(empty)"
