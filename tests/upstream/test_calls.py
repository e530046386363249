"""End to end: the fake Asterisk calls the real router over TCP; the router asks the fake API.

Times here are generous bounds, not measurements: they only say "within the deadline, not
after the API's latency".
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastagi_router.app import Application
from fastagi_router.config import UpstreamSettings, load_settings
from fastagi_router.model import Customer
from fastagi_router.simulator import Asterisk, CallSpec, Keypress
from fastagi_router.upstream.cache import CacheEntry, CacheKey, CachePolicy, UpstreamCache
from tests.fakes.upstream import FakeUpstream, Fault

CALLER, KEY, API_NUMBER = "0123456789", "+33123456789", "0033123456789"


def upstream(fake: FakeUpstream, **changes: Any) -> UpstreamSettings:
    return UpstreamSettings(url=fake.url, token=fake.token, **changes)


def spec(router: Any, callerid: str = CALLER, script: str = "route?account=CL0000") -> CallSpec:
    return CallSpec(callerid=callerid, script=script, port=router.app.agi.port)


def dests(variables: dict[str, str]) -> list[str]:
    return [variables[f"SMARTROUTING_DEST{n}"] for n in range(1, 5)]


async def start(start_router: Any, fake: FakeUpstream, **changes: Any) -> Any:
    settings = {"default_region": "FR", "upstream": upstream(fake, **changes.pop("up", {}))}
    return await start_router(**settings, **changes)


async def test_unknown_locally_known_to_the_api_then_cached(
    start_router: Any, fake: FakeUpstream
) -> None:
    fake.add_number("CL0000", API_NUMBER, destination1="207", destination2="209", vip="oui")
    router = await start(start_router, fake)
    first = await router.asterisk.call(spec(router))
    await router.app.upstream.wait_idle()
    second = await router.asterisk.call(spec(router))
    v = first.variables
    assert first.round_trips == 1
    assert v["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert v["SMARTROUTING_SOURCE"] == "api"
    assert dests(v) == ["207", "209", "", ""]
    assert (v["SMARTROUTING_VIP"], v["SMARTROUTING_ONCALL"]) == ("1", "0")
    assert v["SMARTROUTING_CUSTOMER"] == "CL0000"
    assert v["SMARTROUTING_NUMBER"] == KEY
    assert second.variables["SMARTROUTING_SOURCE"] == "cache"
    assert dests(second.variables) == ["207", "209", "", ""]
    assert fake.asked(API_NUMBER) == 1
    assert fake.requests[0].params["customerAccount"] == "CL0000"


async def test_a_local_customer_never_reaches_the_api(
    start_router: Any, fake: FakeUpstream
) -> None:
    router = await start(start_router, fake)
    await router.store.import_customers(
        [Customer("CL0000", "C1", phone_numbers=(KEY,), destinations=("100", "", "", ""))]
    )
    result = await router.asterisk.call(spec(router))
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_SOURCE"] == "local"
    assert fake.requests == []


async def test_code_typed_by_a_withheld_caller(start_router: Any, fake: FakeUpstream) -> None:
    fake.add_code("CL0000", "4242", destination1="sales", astreinte="1")
    router = await start(start_router, fake)
    result = await router.asterisk.call(spec(router, callerid="anonymous"), [Keypress("4242")])
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert v["SMARTROUTING_IDENTIFIED_BY"] == "code"
    assert v["SMARTROUTING_SOURCE"] == "api"
    assert v["SMARTROUTING_ONCALL"] == "1"
    assert dests(v) == ["sales", "", "", ""]
    assert fake.requests[0].params["code"] == "4242"


async def test_unknown_to_the_api_is_prompted(start_router: Any, fake: FakeUpstream) -> None:
    router = await start(start_router, fake, prompt={"attempts": 1})
    result = await router.asterisk.call(spec(router), [Keypress("")])
    assert result.commands[:2] == ["ANSWER", "GET DATA agent-pass 5000 8"]
    assert result.variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert result.variables["SMARTROUTING_REASON"] == "no_code"


async def test_unsafe_destinations_never_reach_asterisk(
    start_router: Any, fake: FakeUpstream
) -> None:
    fake.add_number("CL0000", API_NUMBER, destination1="207,hangup", destination2="209")
    router = await start(start_router, fake)
    result = await router.asterisk.call(spec(router))
    assert dests(result.variables) == ["209", "", "", ""]
    assert not any("hangup" in line for line in result.commands)


async def test_api_down_and_nothing_cached_is_fallback_with_the_reason(
    start_router: Any, fake: FakeUpstream
) -> None:
    fake.always = Fault(status=503)
    router = await start(start_router, fake, default_queues=("overflow",))
    result = await router.asterisk.call(spec(router))
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "FALLBACK"
    assert v["SMARTROUTING_REASON"] == "upstream_unavailable"
    assert dests(v) == ["overflow", "", "", ""]


async def test_403_is_fallback_denied_and_counted(start_router: Any, fake: FakeUpstream) -> None:
    router = await start(start_router, fake)
    result = await router.asterisk.call(spec(router, script="route?account=CL9999"))
    assert result.variables["SMARTROUTING_REASON"] == "upstream_denied"
    assert router.metrics.value("upstream_requests_total", outcome="denied") == 1
    assert 'outcome="denied"' in router.metrics.render()


async def test_a_lookup_that_would_outlast_the_deadline(
    start_router: Any, fake: FakeUpstream
) -> None:
    fake.always = Fault(latency=10)
    router = await start(start_router, fake, deadline_ms=500, up={"timeout_ms": 5000})
    started = time.monotonic()
    result = await router.asterisk.call(spec(router), timeout=8)
    elapsed = time.monotonic() - started
    # The source gave up before the deadline: its own reason, not the engine's "timeout".
    assert result.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert result.variables["SMARTROUTING_REASON"] == "upstream_timeout"
    assert elapsed < 3.0


async def test_a_slow_api_serves_stale_within_the_deadline(
    start_router: Any, fake: FakeUpstream, tmp_path: Path
) -> None:
    cache = await UpstreamCache.open(str(tmp_path / "router.db"), policy=CachePolicy())
    customer = Customer("CL0000", "CL0000", phone_numbers=(KEY,), destinations=("old", "", "", ""))
    cache.put(CacheEntry(CacheKey("CL0000", "number", KEY), customer, time.time() - 7200))
    await cache.close()
    fake.always = Fault(latency=10)
    router = await start(start_router, fake, deadline_ms=500, up={"timeout_ms": 5000})
    started = time.monotonic()
    result = await router.asterisk.call(spec(router), timeout=8)
    assert time.monotonic() - started < 3.0
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert result.variables["SMARTROUTING_SOURCE"] == "stale"
    assert dests(result.variables) == ["old", "", "", ""]


async def test_breaker_stops_asking_a_failing_api(start_router: Any, fake: FakeUpstream) -> None:
    fake.always = Fault(status=500)
    router = await start(start_router, fake, up={"breaker_failures": 2})
    reasons = []
    for n in range(4):
        result = await router.asterisk.call(spec(router, callerid=f"014000000{n}"))
        reasons.append(result.variables["SMARTROUTING_REASON"])
    assert reasons == ["upstream_unavailable"] * 2 + ["circuit_open"] * 2
    assert len(fake.requests) == 2
    assert router.metrics.value("upstream_circuit_state", state="open") == 1


async def test_account_from_the_number_dialled(start_router: Any, fake: FakeUpstream) -> None:
    fake.accounts.add("CL0042")
    fake.add_number("CL0042", API_NUMBER, destination1="mapped")
    router = await start(start_router, fake, up={"accounts": {"19001234": "CL0042"}})
    result = await router.asterisk.call(spec(router, script="route"))  # extension 19001234
    assert dests(result.variables)[0] == "mapped"
    assert fake.requests[0].params["customerAccount"] == "CL0042"


async def test_url_and_token_from_the_environment_are_enough(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.add_number("CL0000", "0084911111111", destination1="207")
    settings = load_settings(
        environ={
            "FASTAGI_ROUTER_UPSTREAM_URL": fake.url,
            "FASTAGI_ROUTER_UPSTREAM_TOKEN": fake.token,
            "FASTAGI_ROUTER_DB": str(tmp_path / "env.db"),
            "FASTAGI_ROUTER_AGI_LISTEN": "127.0.0.1:0",
        }
    )
    app = await Application.start(settings)
    try:
        result = await Asterisk(port=app.agi.port).call(
            CallSpec(callerid="0911111111", script="route?account=CL0000", port=app.agi.port)
        )
    finally:
        await app.stop(grace=1.0)
    assert result.variables["SMARTROUTING_SOURCE"] == "api"
    assert fake.requests[0].params == {
        "customerAccount": "CL0000",
        "number": "0084911111111",
        "format": "json",
    }


async def test_simultaneous_calls_for_one_number_make_one_request(
    start_router: Any, fake: FakeUpstream
) -> None:
    fake.add_number("CL0000", API_NUMBER, destination1="207")
    fake.always = Fault(latency=0.2)
    router = await start(start_router, fake)
    results = await asyncio.gather(*(router.asterisk.call(spec(router)) for _ in range(30)))
    assert [r.variables["SMARTROUTING_SOURCE"] for r in results] == ["api"] * 30
    assert all(dests(r.variables)[0] == "207" for r in results)
    assert fake.asked(API_NUMBER) == 1
