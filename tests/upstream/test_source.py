"""The upstream source: cache, background refresh, stale-on-error, single flight, breaker.

A real SQLite file and a real HTTP fake; the wall clock (ages) and the monotonic clock (the
breaker) are moved by hand, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.config import Settings, UpstreamSettings
from fastagi_router.errors import SourceError
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.routing import CallContext
from fastagi_router.upstream.breaker import CircuitState
from fastagi_router.upstream.errors import (
    CircuitOpen,
    UpstreamDenied,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fastagi_router.upstream.source import UpstreamSource
from tests.fakes.upstream import FakeUpstream, Fault

FR = NumberParser("FR")
CALLER = FR.caller("0123456789")
OTHER = FR.caller("0198765432")
assert CALLER is not None and OTHER is not None
API_CALLER, API_OTHER = "0033123456789", "0033198765432"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Env:
    fake: FakeUpstream
    wall: Clock
    mono: Clock
    metrics: Metrics
    make: Callable[..., Any]


@pytest.fixture
async def env(fake: FakeUpstream, tmp_path: Path) -> AsyncIterator[Env]:
    opened: list[UpstreamSource] = []
    wall, mono, metrics = Clock(1_700_000_000.0), Clock(500.0), Metrics()

    async def make(**changes: Any) -> UpstreamSource:
        upstream = UpstreamSettings(url=fake.url, token=fake.token, **changes)
        settings = Settings(db=str(tmp_path / "router.db"), default_region="FR", upstream=upstream)
        source = await UpstreamSource.open(settings, metrics, clock=wall, monotonic=mono)
        opened.append(source)
        return source

    fake.add_number("CL0000", API_CALLER, destination1="207", destination2="209", vip="oui")
    yield Env(fake, wall, mono, metrics, make)
    for source in opened:
        await source.close()


def call(
    remaining: float | None = None, extension: str = "", uniqueid: str = "17.1"
) -> CallContext:
    return CallContext(uniqueid=uniqueid, extension=extension, remaining=lambda: remaining)


async def test_miss_then_hit(env: Env) -> None:
    source = await env.make()
    first = await source.by_number("CL0000", CALLER, call=call(2.0))
    await source.wait_idle()
    second = await source.by_number("CL0000", CALLER, call=call(2.0))
    assert first is not None and first.source == "api"
    assert first.customer.destinations == ("207", "209", "", "") and first.customer.vip
    assert second is not None and second.source == "cache"
    assert second.customer == first.customer
    assert env.fake.asked(API_CALLER) == 1
    assert env.metrics.value("upstream_lookups_total", kind="number", served="api") == 1
    assert env.metrics.value("upstream_lookups_total", kind="number", served="fresh") == 1


async def test_the_cache_survives_a_restart(env: Env) -> None:
    first = await env.make()
    await first.by_number("CL0000", CALLER)
    await first.close()
    second = await env.make()
    found = await second.by_number("CL0000", CALLER)
    assert found is not None and found.source == "cache"
    assert env.fake.asked(API_CALLER) == 1


async def test_negative_hit_then_expiry(env: Env) -> None:
    source = await env.make(negative_ttl_s=60)
    assert await source.by_number("CL0000", OTHER) is None
    env.wall.now += 59
    assert await source.by_number("CL0000", OTHER) is None
    assert env.fake.asked(API_OTHER) == 1
    assert env.metrics.value("upstream_lookups_total", kind="number", served="negative") == 1
    env.fake.add_number("CL0000", API_OTHER, destination1="300")
    env.wall.now += 1
    found = await source.by_number("CL0000", OTHER)
    assert found is not None and found.source == "api"
    assert env.fake.asked(API_OTHER) == 2


async def test_after_fresh_ttl_served_at_once_with_one_background_refresh(env: Env) -> None:
    source = await env.make(fresh_ttl_s=300, stale_ttl_s=3600)
    await source.by_number("CL0000", CALLER)
    await source.wait_idle()
    env.fake.add_number("CL0000", API_CALLER, destination1="999")
    env.wall.now += 300
    # The refresh is slow; every call meanwhile gets the cached answer, and only one
    # request goes out for all of them.
    env.fake.faults.append(Fault(latency=0.2))
    served = await asyncio.gather(*(source.by_number("CL0000", CALLER) for _ in range(10)))
    assert {(f.source, f.customer.destinations[0]) for f in served if f} == {("cache", "207")}
    assert len(served) == 10 and all(served)
    await source.wait_idle()
    assert env.fake.asked(API_CALLER) == 2
    renewed = await source.by_number("CL0000", CALLER)
    assert renewed is not None and renewed.source == "cache"
    assert renewed.customer.destinations[0] == "999"
    assert env.fake.asked(API_CALLER) == 2
    assert env.metrics.value("upstream_lookups_total", kind="number", served="refresh") == 10


async def test_a_failed_refresh_keeps_the_entry(env: Env) -> None:
    source = await env.make(fresh_ttl_s=300, stale_ttl_s=3600)
    await source.by_number("CL0000", CALLER)
    env.wall.now += 400
    env.fake.always = Fault(status=503)
    found = await source.by_number("CL0000", CALLER)
    await source.wait_idle()
    again = await source.by_number("CL0000", CALLER)
    assert found is not None and again is not None
    assert (found.source, again.source) == ("cache", "cache")
    assert again.customer.destinations[0] == "207"


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(latency=5),
        Fault(reset=True),
        Fault(body=b"<html>"),
        Fault(status=403),
    ],
    ids=["500", "slow", "reset", "html", "403"],
)
async def test_stale_on_error(env: Env, fault: Fault) -> None:
    source = await env.make(timeout_ms=200, stale_ttl_s=3600, max_stale_s=86400)
    await source.by_number("CL0000", CALLER)
    env.wall.now += 7200
    env.fake.always = fault
    found = await source.by_number("CL0000", CALLER, call=call(2.0))
    assert found is not None and found.source == "stale"
    assert found.customer.destinations == ("207", "209", "", "")
    assert env.metrics.value("upstream_lookups_total", kind="number", served="stale") == 1


async def test_nothing_older_than_max_stale_is_served(env: Env) -> None:
    source = await env.make(stale_ttl_s=3600, max_stale_s=7200)
    await source.by_number("CL0000", CALLER)
    env.wall.now += 7201
    env.fake.always = Fault(status=502)
    with pytest.raises(UpstreamUnavailable) as caught:
        await source.by_number("CL0000", CALLER)
    assert caught.value.reason == "upstream_unavailable"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(status=500), "upstream_unavailable"),
        (Fault(reset=True), "upstream_unavailable"),
        (Fault(truncate=True), "upstream_unavailable"),
        (Fault(latency=5), "upstream_timeout"),
        (Fault(body=b"not json", content_type="text/plain"), "upstream_bad_answer"),
        (Fault(status=400), "upstream_bad_request"),
    ],
)
async def test_nothing_cached_and_a_failure_raises_its_reason(
    env: Env, fault: Fault, reason: str
) -> None:
    source = await env.make(timeout_ms=200)
    env.fake.always = fault
    with pytest.raises(SourceError) as caught:
        await source.by_number("CL0000", CALLER)
    assert caught.value.reason == reason
    assert env.metrics.value("upstream_lookups_total", kind="number", served="failed") == 1


async def test_403_is_counted_and_logged_loudly_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    source = await env.make()
    with caplog.at_level(logging.ERROR, "fastagi_router.upstream"):
        for _ in range(3):
            with pytest.raises(UpstreamDenied):
                await source.by_number("CL9999", CALLER, call=call(2.0))
    assert env.metrics.value("upstream_requests_total", outcome="denied") == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "CL9999" in errors[0].getMessage() and "upstream.token" in errors[0].getMessage()
    assert env.fake.token not in caplog.text
    # A refusal is an answer: the API is up, the breaker stays closed.
    assert source.breaker.state is CircuitState.CLOSED


async def test_single_flight(env: Env) -> None:
    source = await env.make()
    env.fake.always = Fault(latency=0.1)
    results = await asyncio.gather(
        *(source.by_number("CL0000", CALLER, call=call(2.0)) for _ in range(50))
    )
    assert env.fake.asked(API_CALLER) == 1
    assert all(r is not None and r.source == "api" for r in results)
    assert len({r.customer for r in results if r}) == 1


async def test_single_flight_failure_raises_in_every_waiter(env: Env) -> None:
    source = await env.make()
    env.fake.always = Fault(latency=0.1, status=503)
    results = await asyncio.gather(
        *(source.by_number("CL0000", CALLER) for _ in range(10)), return_exceptions=True
    )
    assert env.fake.asked(API_CALLER) == 1
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert len({id(r) for r in results}) == 10


async def test_a_call_that_gives_up_leaves_the_request_to_fill_the_cache(env: Env) -> None:
    source = await env.make(timeout_ms=5000, margin_ms=100)
    env.fake.faults.append(Fault(latency=0.3))
    patient = asyncio.create_task(source.by_number("CL0000", CALLER))
    await env.fake.arrived.wait()
    with pytest.raises(UpstreamTimeout):
        await source.by_number("CL0000", CALLER, call=call(0.15))
    found = await patient
    assert found is not None and found.source == "api"
    await source.wait_idle()
    assert (await source.by_number("CL0000", CALLER)) is not None
    assert env.fake.asked(API_CALLER) == 1


async def test_no_request_when_the_call_has_no_time_left(env: Env) -> None:
    source = await env.make(margin_ms=100)
    with pytest.raises(UpstreamTimeout) as caught:
        await source.by_number("CL0000", CALLER, call=call(0.05))
    assert caught.value.reason == "upstream_timeout"
    assert env.fake.requests == []


class TimeoutSpy:
    """Wraps the transport and records the timeout of each request."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.timeouts: list[float] = []

    async def get(self, params: Any, timeout: float) -> Any:
        self.timeouts.append(timeout)
        return await self.inner.get(params, timeout)

    async def close(self) -> None:
        await self.inner.close()


async def test_request_timeout_follows_the_call_budget(env: Env) -> None:
    source = await env.make(timeout_ms=5000, margin_ms=100)
    spy = TimeoutSpy(source.client.transport)
    source.client.transport = spy
    env.fake.always = Fault(latency=5)
    with pytest.raises(UpstreamTimeout):
        await source.by_number("CL0000", CALLER, call=call(0.3))
    env.fake.always = Fault()
    await source.by_number("CL0000", OTHER, call=call(30.0))
    # The call's budget (minus the margin) bounds the request, timeout_ms bounds the rest.
    assert spy.timeouts == [pytest.approx(0.2), 5.0]
    await source.wait_idle()
    assert env.metrics.value("upstream_requests_total", outcome="timeout") == 1


async def test_breaker_opens_serves_stale_probes_and_closes(env: Env) -> None:
    source = await env.make(breaker_failures=3, breaker_cooldown_s=30, stale_ttl_s=300)
    await source.by_number("CL0000", CALLER)
    env.wall.now += 600  # beyond stale_ttl: the API would be asked
    env.fake.always = Fault(status=503)
    for n in range(3):
        number = FR.caller(f"014000000{n}")
        assert number is not None
        with pytest.raises(UpstreamUnavailable):
            await source.by_number("CL0000", number)
    assert source.breaker.state is CircuitState.OPEN
    asked = len(env.fake.requests)
    with pytest.raises(CircuitOpen) as caught:
        await source.by_number("CL0000", OTHER)
    assert caught.value.reason == "circuit_open"
    stale = await source.by_number("CL0000", CALLER)
    assert stale is not None and stale.source == "stale"
    assert len(env.fake.requests) == asked
    assert env.metrics.value("upstream_circuit_state", state="open") == 1

    env.mono.now += 30
    assert source.breaker.state is CircuitState.HALF_OPEN
    env.fake.always = Fault()
    probe = await source.by_number("CL0000", CALLER)
    assert probe is not None and probe.source == "api"
    assert source.breaker.state is CircuitState.CLOSED
    assert env.metrics.value("upstream_circuit_state", state="closed") == 1
    assert len(env.fake.requests) == asked + 1


async def test_failed_probe_opens_again(env: Env) -> None:
    source = await env.make(breaker_failures=1, breaker_cooldown_s=30)
    env.fake.always = Fault(status=500)
    with pytest.raises(UpstreamUnavailable):
        await source.by_number("CL0000", CALLER)
    env.mono.now += 30
    with pytest.raises(UpstreamUnavailable):
        await source.by_number("CL0000", CALLER)  # the probe
    with pytest.raises(CircuitOpen):
        await source.by_number("CL0000", CALLER)
    assert env.fake.asked(API_CALLER) == 2


async def test_code_lookup(env: Env) -> None:
    env.fake.add_code("CL0000", "4242", destination1="sales", astreinte=True)
    source = await env.make()
    found = await source.by_code("CL0000", "4242")
    unknown = await source.by_code("CL0000", "0000")
    cached = await source.by_code("CL0000", "4242")
    assert found is not None and found.source == "api" and found.customer.oncall
    assert found.customer.code == "4242"
    assert unknown is None
    assert cached is not None and cached.source == "cache"
    assert env.fake.asked("4242") == 1
    assert env.fake.requests[0].params["code"] == "4242"


async def test_account_from_the_number_dialled(env: Env) -> None:
    env.fake.accounts |= {"CL0001", "CL0002"}
    env.fake.add_number("CL0001", API_CALLER, destination1="mapped")
    env.fake.add_number("CL0002", API_CALLER, destination1="fallback")
    source = await env.make(accounts={"0287654321": "CL0001"}, account="CL0002")
    by_url = await source.by_number("CL0000", CALLER, call=call(extension="0287654321"))
    mapped = await source.by_number("default", CALLER, call=call(extension="0287654321"))
    normalised = await source.by_number("default", CALLER, call=call(extension="+33287654321"))
    unmapped = await source.by_number("default", CALLER, call=call(extension="19001234"))
    assert by_url is not None and by_url.customer.destinations[0] == "207"
    assert mapped is not None and mapped.customer.destinations[0] == "mapped"
    assert normalised is not None and normalised.customer.destinations[0] == "mapped"
    assert unmapped is not None and unmapped.customer.destinations[0] == "fallback"
    accounts = [r.params["customerAccount"] for r in env.fake.requests]
    assert accounts == ["CL0000", "CL0001", "CL0002"]


async def test_no_account_no_request(env: Env) -> None:
    source = await env.make()
    assert await source.by_number("default", CALLER, call=call(extension="19001234")) is None
    assert env.fake.requests == []
    assert env.metrics.value("upstream_lookups_total", kind="number", served="no_account") == 1


async def test_not_found_replaces_what_was_cached(env: Env) -> None:
    source = await env.make(fresh_ttl_s=300, stale_ttl_s=300)
    await source.by_number("CL0000", CALLER)
    env.wall.now += 301
    del env.fake.records[("CL0000", "number", API_CALLER)]
    assert await source.by_number("CL0000", CALLER) is None
    await source.wait_idle()
    env.wall.now += 120  # the "not found" expired; the API now fails
    env.fake.always = Fault(status=500)
    with pytest.raises(UpstreamUnavailable):
        await source.by_number("CL0000", CALLER)


async def test_an_unreadable_cache_still_asks_the_api(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    source = await env.make()
    await source.cache._reader.close()
    found = await source.by_number("CL0000", CALLER, call=call(2.0))
    assert found is not None and found.source == "api"
    assert "upstream cache unreadable" in caplog.text
