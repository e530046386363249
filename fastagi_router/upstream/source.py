"""`UpstreamSource`: the routing source that asks the upstream API, behind its cache.

For one lookup (an account and a caller number, or an account and a code)::

    cache FRESH                      -> the cached answer, SMARTROUTING_SOURCE=cache
    cache REFRESH                    -> the cached answer at once (cache), and one background
                                        request renews it
    otherwise, the API is asked      -> its answer (api); "not found" is cached too
      ... it fails, is too slow for the call, or the breaker is open:
          a STALE entry              -> served (stale)
          nothing usable             -> `UpstreamError`: FALLBACK with its reason

A call waits at most ``upstream.timeout_ms``, and never longer than its own deadline minus
``upstream.margin_ms``, so it always has time to answer. Concurrent lookups of one key share
one request (single flight): a call that stops waiting does not cancel it, and its answer
still lands in the cache for the next call. The circuit breaker counts the failures that
say the API is unhealthy; while it is open no request goes out and calls are answered from
the cache (or FALLBACK ``circuit_open``) at once.

The account sent as ``customerAccount`` is the call's (from the AGI URL); for a call that
names none, the number dialled (``agi_extension``) is looked up in ``upstream.accounts``,
then ``upstream.account`` applies; with none of them the API is not asked.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from fastagi_router.config import Settings, UpstreamSettings
from fastagi_router.errors import StoreError, UpstreamError
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics
from fastagi_router.model import DEFAULT_ACCOUNT, Customer
from fastagi_router.phone import CallerNumber, NumberParser
from fastagi_router.routing.sources import CallContext, Found
from fastagi_router.upstream.breaker import CircuitBreaker, CircuitState
from fastagi_router.upstream.cache import (
    CacheEntry,
    CacheKey,
    CachePolicy,
    Freshness,
    UpstreamCache,
)
from fastagi_router.upstream.client import AiohttpTransport, Fields, Transport, UpstreamClient
from fastagi_router.upstream.errors import (
    CircuitOpen,
    UpstreamBadRequest,
    UpstreamDenied,
    UpstreamTimeout,
    UpstreamUnavailable,
    trips_breaker,
)

log = logging.getLogger("fastagi_router.upstream")

Outcome = Customer | None | UpstreamError
Fetch = Callable[[float], Awaitable[Customer | None]]
#: How a lookup was served -> its result as a cache lookup (`cache_lookups_total`).
_CACHE_RESULT = {
    "fresh": "hit",
    "refresh": "hit",
    "negative": "negative",
    "stale": "stale",
    "api": "miss",
    "not_found": "miss",
    "failed": "miss",
}
#: Configuration errors (403, 400) are logged at most once per account in this many seconds.
_LOUD_EVERY = 60.0


class UpstreamSource:
    """A `CustomerSource` over the upstream API, its cache and its circuit breaker."""

    def __init__(
        self,
        client: UpstreamClient,
        cache: UpstreamCache,
        breaker: CircuitBreaker,
        settings: UpstreamSettings,
        metrics: Metrics,
        *,
        numbers: NumberParser | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.cache = cache
        self.breaker = breaker
        self.metrics = metrics
        self._timeout = settings.timeout_ms / 1000
        self._margin = settings.margin_ms / 1000
        self._default_account = settings.account or None
        self._accounts = _account_map(settings.accounts, numbers)
        self._numbers = numbers
        self._clock = clock
        self._monotonic = monotonic
        self._flights: dict[CacheKey, asyncio.Task[Outcome]] = {}
        self._loud: dict[tuple[str, str], float] = {}
        metrics.describe("upstream_lookups_total", "counter", "Upstream lookups by how served")
        metrics.describe("upstream_requests_total", "counter", "Requests to the API by outcome")
        metrics.describe(
            "upstream_request_duration_seconds", "histogram", "Time a request to the API took"
        )
        self._observe_request = metrics.histogram("upstream_request_duration_seconds")
        metrics.describe(
            "cache_lookups_total",
            "counter",
            "Cache lookups by cache (hot: the in-memory layer; upstream: the API's answers) "
            "and result (hit, miss; upstream also negative, stale)",
        )
        self._count_cache = {
            served: metrics.counter("cache_lookups_total", cache="upstream", result=result)
            for served, result in _CACHE_RESULT.items()
        }
        metrics.states(
            "upstream_circuit_state",
            "state",
            [str(state) for state in CircuitState],
            lambda: str(self.breaker.state),
            "Upstream circuit breaker: 1 for its state (summed over workers: workers in it)",
        )

    @classmethod
    async def open(
        cls,
        settings: Settings,
        metrics: Metrics,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> UpstreamSource:
        """Return the source for ``settings.upstream``, its cache in ``settings.db``.

        Raises `StoreError` when the cache cannot be opened.
        """
        up = settings.upstream
        url = urllib.parse.urlsplit(up.url)
        if url.scheme == "http" and url.hostname not in ("localhost", "127.0.0.1", "::1"):
            log.warning("upstream.url is plain http: the bearer token crosses the network in clear")
        cache = await UpstreamCache.open(
            settings.db,
            policy=CachePolicy.from_settings(up),
            max_entries=up.cache_max_entries,
            clock=clock,
            metrics=metrics,
        )
        try:
            if transport is None:
                transport = AiohttpTransport.open(
                    up.url, up.token, max_connections=up.max_connections
                )
            breaker = CircuitBreaker(
                up.breaker_failures, float(up.breaker_cooldown_s), clock=monotonic
            )
            return cls(
                UpstreamClient(transport, Fields.from_settings(up)),
                cache,
                breaker,
                up,
                metrics,
                numbers=NumberParser(settings.default_region),
                clock=clock,
                monotonic=monotonic,
            )
        except BaseException:
            if transport is not None:
                await transport.close()
            await cache.close()
            raise

    async def wait_idle(self) -> None:
        """Return once no request is out (background refreshes included) and the answers
        are written to the cache."""
        while self._flights:
            await asyncio.gather(*self._flights.values(), return_exceptions=True)
        await self.cache.flush()

    async def close(self) -> None:
        """Cancel requests still out, close the HTTP session, write the cache and close it."""
        flights = list(self._flights.values())
        for task in flights:
            task.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        await self.client.transport.close()
        await self.cache.close()

    # -- CustomerSource --------------------------------------------------------------------

    async def by_number(
        self, account: str, number: CallerNumber, *, call: CallContext | None = None
    ) -> Found | None:
        """See `CustomerSource.by_number`. Raises an `UpstreamError` when nothing can answer."""
        resolved = self.account_for(account, call)
        if resolved is None:
            self.metrics.inc("upstream_lookups_total", kind="number", served="no_account")
            return None
        tag = _tag(call)

        def fetch(timeout: float) -> Awaitable[Customer | None]:
            return self.client.by_number(resolved, number, timeout=timeout, tag=tag)

        return await self._lookup(CacheKey(resolved, "number", number.key), fetch, call)

    async def by_code(
        self, account: str, code: str, *, call: CallContext | None = None
    ) -> Found | None:
        """See `CustomerSource.by_code`. Raises an `UpstreamError` when nothing can answer."""
        resolved = self.account_for(account, call)
        if resolved is None:
            self.metrics.inc("upstream_lookups_total", kind="code", served="no_account")
            return None
        tag = _tag(call)

        def fetch(timeout: float) -> Awaitable[Customer | None]:
            return self.client.by_code(resolved, code, timeout=timeout, tag=tag)

        return await self._lookup(CacheKey(resolved, "code", code), fetch, call)

    def account_for(self, account: str, call: CallContext | None) -> str | None:
        """Return the ``customerAccount`` for a call, or None when there is none to send."""
        if account != DEFAULT_ACCOUNT:
            return account
        extension = call.extension.strip() if call is not None else ""
        if extension:
            mapped = self._accounts.get(extension)
            if mapped is None and self._numbers is not None:
                dialled = self._numbers.caller(extension)
                mapped = self._accounts.get(dialled.key) if dialled is not None else None
            if mapped is not None:
                return mapped
        return self._default_account

    # -- the lookup ------------------------------------------------------------------------

    async def _lookup(self, key: CacheKey, fetch: Fetch, call: CallContext | None) -> Found | None:
        tag = _tag(call)
        entry = await self._cached(key, tag)
        freshness = self.cache.policy.classify(entry, self._clock()) if entry else None
        if entry is not None and freshness is Freshness.FRESH:
            return self._served(key, "fresh" if entry.customer else "negative", entry, "cache")
        if entry is not None and freshness is Freshness.REFRESH:
            self._refresh(key, fetch)
            return self._served(key, "refresh", entry, "cache")
        stale = entry if freshness is Freshness.STALE else None
        budget = self._budget(call)
        if budget <= 0:
            return self._without_api(key, stale, UpstreamTimeout("no time left for the API"), tag)
        flight = self._flights.get(key)
        if flight is None:
            if not self.breaker.allow():
                refused = CircuitOpen("not asking the API: it failed repeatedly")
                return self._without_api(key, stale, refused, tag)
            flight = self._start(key, fetch, budget, tag)
        try:
            async with asyncio.timeout(budget):
                outcome = await asyncio.shield(flight)
        except TimeoutError:
            late = UpstreamTimeout(f"no answer within the call's {budget * 1000:.0f} ms")
            return self._without_api(key, stale, late, tag)
        if isinstance(outcome, UpstreamError):
            return self._without_api(key, stale, outcome, tag)
        served = "api" if outcome is not None else "not_found"
        return self._served(key, served, CacheEntry(key, outcome, 0), "api")

    def _budget(self, call: CallContext | None) -> float:
        remaining = call.remaining() if call is not None else None
        if remaining is None:
            return self._timeout
        return min(self._timeout, remaining - self._margin)

    async def _cached(self, key: CacheKey, tag: str) -> CacheEntry | None:
        try:
            return await self.cache.get(key)
        except StoreError as exc:
            # Without the cache the API still answers; the call must not fail for it.
            log.warning("[%s] upstream cache unreadable, asking the API: %s", sanitize(tag), exc)
            return None

    def _served(self, key: CacheKey, served: str, entry: CacheEntry, source: str) -> Found | None:
        self.metrics.inc("upstream_lookups_total", kind=key.kind, served=served)
        self._count_cache[served](1.0)
        return Found(entry.customer, source) if entry.customer is not None else None

    def _without_api(
        self, key: CacheKey, stale: CacheEntry | None, error: UpstreamError, tag: str
    ) -> Found | None:
        """Serve ``stale`` when there is one; raise (a copy of) ``error`` otherwise."""
        if stale is not None and stale.customer is not None:
            log.info(
                "[%s] upstream %s: serving %s as fetched %.0f s ago (%s)",
                sanitize(tag),
                error.reason,
                sanitize(key),
                stale.age(self._clock()),
                sanitize(error),
            )
            self.metrics.inc("upstream_lookups_total", kind=key.kind, served="stale")
            self._count_cache["stale"](1.0)
            return Found(stale.customer, "stale")
        self.metrics.inc("upstream_lookups_total", kind=key.kind, served="failed")
        self._count_cache["failed"](1.0)
        # A shared outcome is raised in every waiting call: each gets its own copy.
        raise copy.copy(error) from error

    # -- requests --------------------------------------------------------------------------

    def _refresh(self, key: CacheKey, fetch: Fetch) -> None:
        if key not in self._flights and self.breaker.allow():
            self._start(key, fetch, self._timeout, "refresh")

    def _start(
        self, key: CacheKey, fetch: Fetch, timeout: float, tag: str
    ) -> asyncio.Task[Outcome]:
        task = asyncio.get_running_loop().create_task(self._fly(key, fetch, timeout, tag))
        self._flights[key] = task

        def landed(done: asyncio.Task[Outcome]) -> None:
            if self._flights.get(key) is done:
                del self._flights[key]

        task.add_done_callback(landed)
        return task

    async def _fly(self, key: CacheKey, fetch: Fetch, timeout: float, tag: str) -> Outcome:
        """Make one request; return its outcome (never raise it: it may have no waiter)."""
        started = self._monotonic()
        try:
            customer = await fetch(timeout)
        except UpstreamError as exc:
            self._failed(key, exc, tag)
            return exc
        except Exception as exc:
            log.exception("[%s] upstream lookup of %s failed unexpectedly", sanitize(tag), key)
            self.breaker.record_failure()
            return UpstreamUnavailable(f"unexpected error: {sanitize(exc)}")
        finally:
            self._observe_request(self._monotonic() - started)
        self.breaker.record_success()
        self.metrics.inc("upstream_requests_total", outcome="found" if customer else "not_found")
        # "Not found" replaces what was cached: the customer may have been removed upstream.
        self.cache.put(CacheEntry(key, customer, self._clock()))
        return customer

    def _failed(self, key: CacheKey, exc: UpstreamError, tag: str) -> None:
        self.metrics.inc("upstream_requests_total", outcome=exc.reason.removeprefix("upstream_"))
        if trips_breaker(exc):
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # it answered: our request is the problem
        if isinstance(exc, UpstreamDenied):
            if self._loud_now("denied", key.account):
                log.error(
                    "[%s] upstream API refuses account %s (%s): the token lacks it; check "
                    "upstream.token and the account in the AGI URL or upstream.accounts",
                    sanitize(tag),
                    sanitize(key.account),
                    exc.status,
                )
        elif isinstance(exc, UpstreamBadRequest):
            if self._loud_now("bad_request", key.account):
                log.warning(
                    "[%s] upstream API rejects the request for %s as malformed: %s; check "
                    "upstream.number_param, upstream.code_param and upstream.number_format",
                    sanitize(tag),
                    sanitize(key),
                    sanitize(exc),
                )
        else:
            log.warning("[%s] upstream API failed for %s: %s", sanitize(tag), sanitize(key), exc)

    def _loud_now(self, what: str, account: str) -> bool:
        now = self._monotonic()
        last = self._loud.get((what, account))
        if last is not None and now - last < _LOUD_EVERY:
            return False
        self._loud[(what, account)] = now
        return True


def _tag(call: CallContext | None) -> str:
    return call.uniqueid if call is not None and call.uniqueid else "-"


def _account_map(accounts: dict[str, str], numbers: NumberParser | None) -> dict[str, str]:
    """The configured map, plus each number dialled in its normalised form."""
    mapped = dict(accounts)
    if numbers is not None:
        for extension, account in accounts.items():
            dialled = numbers.caller(extension)
            if dialled is not None:
                mapped.setdefault(dialled.key, account)
    return mapped
