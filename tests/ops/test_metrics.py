"""``/metrics`` as Prometheus reads it: every metric the operations issue lists exists with
its type and moves when the thing happens (real calls over TCP, the fake upstream API, the
fake Manager), and no label ever carries a number, a code, an account or an id."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fastagi_router.ami import ManagerState
from fastagi_router.routing.decision import REASONS, Status
from fastagi_router.simulator import CallSpec, Keypress
from tests.ami.support import eventually
from tests.fakes.ami import QUEUE_CALL, load
from tests.fakes.upstream import FakeUpstream, Fault

P = "fastagi_router_"
LOCAL, API, UNKNOWN = "0612345678", "0698765432", "0655501234"

#: Every metric the issue asks for, by family name and type.
LISTED = {
    "calls": "counter",
    "decision_duration_seconds": "histogram",
    "call_round_trips": "histogram",
    "cache_lookups": "counter",
    "upstream_requests": "counter",
    "upstream_request_duration_seconds": "histogram",
    "upstream_circuit_state": "gauge",
    "sessions_active": "gauge",
    "sessions_refused": "counter",
    "sessions": "counter",
    "ami_connection_state": "gauge",
    "ami_events": "counter",
    "learned": "counter",
}


class Scrape:
    """One parsed scrape of ``/metrics``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def type(self, name: str) -> str:
        return self.families[P + name].type

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples called ``P + sample`` that have ``labels``."""
        return sum(
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == P + sample and labels.items() <= s.labels.items()
        )


async def scrape(router: Any, accept: str = "") -> Scrape:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{router.http_url}/metrics", headers=headers) as reply,
    ):
        assert reply.status == 200
        return Scrape(await reply.text())


def call(router: Any, number: str, script: str = "route?account=CL0000") -> CallSpec:
    return CallSpec(callerid=number, script=script, port=router.app.agi.port)


async def start(start_router: Any, fake: FakeUpstream, manager: Any, **changes: Any) -> Any:
    return await start_router(
        default_region="FR",
        upstream={"url": fake.url, "token": fake.token},
        ami={"host": "127.0.0.1", "port": manager.port, "username": "router", "secret": "s3cret"},
        **changes,
    )


async def test_every_listed_metric_exists_and_moves(
    start_router: Any, fake: FakeUpstream, fake_manager: Any
) -> None:
    fake.add_number("CL0000", "0033698765432", destination1="207")
    manager = await fake_manager(recording=load(QUEUE_CALL))
    router = await start(start_router, fake, manager)
    await router.store.set_route("CL0000", LOCAL, "+33612345678", "104")
    await eventually(
        lambda: router.app.learning.status.state is ManagerState.CONNECTED, "the Manager login"
    )
    before = await scrape(router)
    for name, kind in LISTED.items():
        assert before.type(name) == kind, name
    assert before.value("upstream_circuit_state", state="closed") == 1
    assert before.value("upstream_circuit_state", state="open") == 0
    assert before.value("ami_connection_state", state="connected") == 1
    assert before.value("calls_total") == 0

    asterisk = router.asterisk
    for _ in range(2):
        assert (await asterisk.call(call(router, LOCAL))).variables["SMARTROUTING_AGENT"] == "104"
    first = await asterisk.call(call(router, API))
    await router.app.upstream.wait_idle()
    second = await asterisk.call(call(router, API))
    assert [first.variables["SMARTROUTING_SOURCE"], second.variables["SMARTROUTING_SOURCE"]] == [
        "api",
        "cache",
    ]
    prompted = await asterisk.call(call(router, UNKNOWN), [Keypress("")] * 3)
    assert prompted.variables["SMARTROUTING_REASON"] == "no_code"
    await router.app.upstream.wait_idle()
    sent = await manager.send(load(QUEUE_CALL).events)
    await eventually(
        lambda: router.metrics.value("ami_events_total") >= 1 + sent, "the Manager events"
    )
    await router.app.learning.writer.drain()

    after = await scrape(router)
    assert after.value("calls_total", status="AGENT", source="local", reason="none") == 2
    assert after.value("calls_total", status="CUSTOMER", source="api") == 1
    assert after.value("calls_total", status="CUSTOMER", source="cache") == 1
    assert after.value("calls_total", status="UNKNOWN", reason="no_code") == 1
    assert after.value("decision_duration_seconds_count", source="local") == 2
    assert after.value("decision_duration_seconds_count", source="none") == 1
    assert after.value("decision_duration_seconds_bucket", source="local", le="+Inf") == 2
    assert after.value("decision_duration_seconds_sum", source="api") > 0
    assert after.value("call_round_trips_count") == 5
    # Four calls answered in one round trip; the prompt costs ANSWER, 3 GET DATA, 2 STREAM
    # FILE and the answer.
    assert after.value("call_round_trips_bucket", le="1.0") == 4
    assert after.value("call_round_trips_sum") == 4 + prompted.round_trips
    assert after.value("cache_lookups_total", cache="hot", result="miss") >= 1
    assert after.value("cache_lookups_total", cache="hot", result="hit") >= 1
    # The sticky agent's number has no local customer: the API is asked for its details
    # (not found, then cached as such), as it is for the unknown number and the API's one.
    assert after.value("cache_lookups_total", cache="upstream", result="miss") == 3
    assert after.value("cache_lookups_total", cache="upstream", result="negative") == 1
    assert after.value("cache_lookups_total", cache="upstream", result="hit") == 1
    assert after.value("upstream_requests_total", outcome="found") == 1
    assert after.value("upstream_requests_total", outcome="not_found") == 2
    assert after.value("upstream_request_duration_seconds_count") == 3
    assert after.value("sessions_total", outcome="answered") == 5
    assert after.value("sessions_active") == 0
    assert after.value("ami_events_total") >= 1 + sent
    assert after.value("learned_total", outcome="created") == 1
    # The process collectors of the client library come along.
    assert after.type("calls") == "counter"
    assert "process_cpu_seconds" in after.families and "python_info" in after.families


async def test_a_negative_and_a_stale_answer_and_the_breaker(
    start_router: Any, fake: FakeUpstream, fake_manager: Any
) -> None:
    manager = await fake_manager()
    router = await start(start_router, fake, manager)
    asterisk = router.asterisk
    await asterisk.call(call(router, UNKNOWN), [Keypress("")])  # "not found": cached
    await router.app.upstream.wait_idle()
    await asterisk.call(call(router, UNKNOWN), [Keypress("")])
    fake.always = Fault(status=500)
    for n in range(5):
        await asterisk.call(call(router, f"065550100{n}"), [Keypress("")])
    after = await scrape(router)
    assert after.value("cache_lookups_total", cache="upstream", result="negative") == 1
    assert after.value("upstream_requests_total", outcome="unavailable") == 5
    assert after.value("upstream_circuit_state", state="open") == 1
    assert after.value("upstream_circuit_state", state="closed") == 0


async def test_refused_sessions_by_reason(start_router: Any) -> None:
    router = await start_router(agi={"max_sessions": 1})
    port = router.app.agi.port
    # One connection that sends nothing holds the only session.
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await eventually(lambda: router.app.agi.active == 1, "the idle connection")
    result = await router.asterisk.call(call(router, LOCAL))
    assert result.variables["SMARTROUTING_REASON"] == "overload"
    writer.close()
    await writer.wait_closed()
    settings = router.app.settings
    router.app.agi.apply(
        dataclasses.replace(settings, agi=dataclasses.replace(settings.agi, allow=("10.0.0.0/8",)))
    )
    refused = await router.asterisk.call(call(router, LOCAL))
    assert refused.variables == {}
    text = await scrape(router)
    assert text.value("sessions_refused_total", reason="overload") == 1
    assert text.value("sessions_refused_total", reason="allowlist") == 1
    assert text.value("sessions_refused_total", reason="shed") == 0
    assert text.value("calls_total", status="FALLBACK", reason="overload", source="none") == 1


async def test_openmetrics_when_the_scraper_asks_for_it(start_router: Any) -> None:
    router = await start_router()
    await router.asterisk.call(call(router, LOCAL), [Keypress("")] * 3)
    accept = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{router.http_url}/metrics", headers={"Accept": accept}) as reply,
    ):
        text = await reply.text()
        assert reply.content_type == "application/openmetrics-text"
    assert text.endswith("# EOF\n")
    assert "# TYPE fastagi_router_calls counter" in text
    assert 'fastagi_router_calls_total{reason="no_code",source="none",status="UNKNOWN"}' in text


# -- labels are bounded --------------------------------------------------------------------

#: What each label may hold: a set of words, or a pattern for the open-ended but bounded ones.
ALLOWED: dict[str, set[str] | re.Pattern[str]] = {
    "status": {str(s) for s in Status} | {"none"},
    "reason": set(REASONS)
    | {"none", "allowlist", "overload", "shed"}
    | {"malformed", "short_call", "source_off", "queue_not_learned", "no_agent"}
    | {"context_not_learned", "withheld", "own_extension", "bad_account"},
    "cause": {"error", "connect_failed", "lost", "login_timeout", "ping_timeout"},
    "routed": {"yes", "no"},
    "source": {"local", "cache", "api", "stale", "none"},
    "outcome": {
        "answered",
        "hangup",
        "no_reply",
        "protocol_error",
        "header_timeout",
        "found",
        "not_found",
        "denied",
        "bad_request",
        "timeout",
        "unavailable",
        "bad_answer",
        "accepted",
        "rejected",
        "too_short",
        "invalid",
        "locked",
        "created",
        "updated",
        "refreshed",
        "pinned",
        "dropped",
        "store_error",
        "written",
        "failed",
        "ok",
        "refused",
    },
    "cache": {"hot", "upstream"},
    "result": {"hit", "miss", "negative", "stale"},
    "state": {"closed", "half_open", "open"} | {str(s) for s in ManagerState},
    "kind": {"number", "code", "learned_routes", "audit_entries"},
    "served": {"fresh", "refresh", "negative", "api", "not_found", "stale", "failed"}
    | {"no_account"},
    "method": {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "other"},
    "route": re.compile(r"unmatched|/[a-zA-Z0-9/{}_.]*"),
    "le": re.compile(r"\+Inf|[0-9.e-]+"),
}
HTTP_STATUS = re.compile(r"[1-5][0-9][0-9]")


async def test_labels_never_carry_numbers_codes_accounts_or_ids(
    start_router: Any, fake: FakeUpstream, fake_manager: Any
) -> None:
    fake.add_code("ZX4242", "739154", destination1="207")
    manager = await fake_manager()
    router = await start(start_router, fake, manager)
    asterisk = router.asterisk
    secret = ["0655587413", "55587413", "739154", "ZX4242", "8246173.77", "Mallory"]
    for callerid in ("0655587413", "anonymous"):
        spec = CallSpec(
            callerid=callerid,
            calleridname="Mallory",
            script="route?account=ZX4242",
            uniqueid="8246173.77",
            port=router.app.agi.port,
        )
        await asterisk.call(spec, [Keypress("739154")])
        await asterisk.call(spec, [Keypress("2468"), Keypress("1357"), Keypress("")])
    await asterisk.call(call(router, "0655587413", "no-such-script?account=ZX4242"))
    async with aiohttp.ClientSession() as session:
        for path in ("/v1/smartrouting/0655587413?account=ZX4242", "/v1/customers/ZX4242"):
            async with session.get(router.http_url + path) as reply:
                await reply.read()
    result = await scrape(router)
    for private in secret:
        assert private not in result.text, private
    labels_seen = 0
    for family in result.families.values():
        if not family.name.startswith(P):
            continue
        for sample in family.samples:
            for name, value in sample.labels.items():
                labels_seen += 1
                allowed = ALLOWED.get(name)
                if name == "status" and HTTP_STATUS.fullmatch(value):
                    continue
                assert allowed is not None, f"{family.name}: unexpected label {name}"
                ok = (
                    allowed.fullmatch(value)
                    if isinstance(allowed, re.Pattern)
                    else value in allowed
                )
                assert ok, f"{family.name}{{{name}={value!r}}}"
    assert labels_seen > 20
