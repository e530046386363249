"""What can go wrong with the upstream customer API, one class per way it fails.

Every class is an `UpstreamError` (a `SourceError`), so the routing policy needs no more
than the one ``except SourceError`` it has; ``reason`` is the SMARTROUTING_REASON word the
call ends with when nothing cached can stand in::

    UpstreamError                         (fastagi_router.errors)
    ├── UpstreamTimeout       upstream_timeout      no answer in time: the request's timeout,
    │                                               or what the call's deadline left for it
    ├── UpstreamUnavailable   upstream_unavailable  refused, reset or closed mid-answer; 5xx,
    │                                               429 and any other unexpected status
    ├── UpstreamBadAnswer     upstream_bad_answer   200, but not a JSON object we can read
    │                                               (HTML from a proxy, truncated, too big)
    ├── UpstreamBadRequest    upstream_bad_request  400: the API says our request is wrong
    ├── UpstreamDenied        upstream_denied       401/403: the token lacks the account
    └── CircuitOpen           circuit_open          not asked: too many failures in a row

``trips_breaker`` says whether the failure is the API's health (timeouts, resets, 5xx,
garbage) rather than a statement about our request (400, 403): only the former count
towards opening the circuit breaker. aiohttp's exceptions are translated into these at the
transport (`fastagi_router.upstream.client`), with ``raise ... from exc``.
"""

from __future__ import annotations

from fastagi_router.errors import UpstreamError


class UpstreamTimeout(UpstreamError):
    """No answer within the time the request (or the call) had."""

    trips_breaker = True

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="upstream_timeout")


class UpstreamUnavailable(UpstreamError):
    """The API could not be reached, dropped the connection, or answered an error status."""

    trips_breaker = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, reason="upstream_unavailable")
        self.status = status


class UpstreamBadAnswer(UpstreamError):
    """The API answered 200 with a body that is not a JSON object we can read."""

    trips_breaker = True

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="upstream_bad_answer")


class UpstreamBadRequest(UpstreamError):
    """400: the API refused the request as malformed (a parameter name or number format)."""

    trips_breaker = False

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="upstream_bad_request")
        self.status = 400


class UpstreamDenied(UpstreamError):
    """401/403: the token does not give access to the account (a configuration error)."""

    trips_breaker = False

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message, reason="upstream_denied")
        self.status = status


class CircuitOpen(UpstreamError):
    """The API was not asked: the circuit breaker is open after repeated failures."""

    trips_breaker = False

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="circuit_open")


def trips_breaker(error: UpstreamError) -> bool:
    """Return True when ``error`` says the API is unhealthy (it counts towards the breaker)."""
    return bool(getattr(error, "trips_breaker", True))


__all__ = [
    "CircuitOpen",
    "UpstreamBadAnswer",
    "UpstreamBadRequest",
    "UpstreamDenied",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "trips_breaker",
]
