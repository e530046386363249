"""End to end: a fake Asterisk (faithful to the recordings) calls the real server over TCP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastagi_router.model import Customer
from fastagi_router.simulator import CallSpec, Faults, Keypress
from fastagi_router.store import SQLiteStore
from tests.fakes.sources import BrokenStore, DictSource, FailingSource, HangingSource, source_error

ACME = Customer(
    account="default",
    customer_id="C1",
    name="ACME",
    phone_numbers=("+84899990988",),
    code="1234",
    destinations=("207", "209", "214", "216"),
    vip=True,
)
BETA = Customer(
    account="CL0000",
    customer_id="C2",
    name="Beta",
    phone_numbers=("+33123456789",),
    code="5555",
    destinations=("300", "", "", ""),
    oncall=True,
)


def spec(
    router: Any, callerid: str = "0899990988", script: str | None = "route", **kw: Any
) -> CallSpec:
    return CallSpec(callerid=callerid, script=script, port=router.app.agi.port, **kw)


def assert_clean(result: Any) -> None:
    """Every call: no reset, nothing sent while a prompt played."""
    assert not result.reset
    assert result.interrupted == 0
    assert result.closed_by == "server"


async def test_known_agent_is_one_round_trip(start_router: Any) -> None:
    router = await start_router()
    await router.store.import_customers([ACME])
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(spec(router))
    assert_clean(result)
    assert result.round_trips == 1
    assert result.commands[0].startswith("EXEC MSet ")
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "AGENT"
    assert v["SMARTROUTING_AGENT"] == "104"
    assert [v[f"SMARTROUTING_DEST{n}"] for n in range(1, 5)] == ["207", "209", "214", "216"]
    assert (v["SMARTROUTING_VIP"], v["SMARTROUTING_ONCALL"]) == ("1", "0")
    assert v["SMARTROUTING_CUSTOMER"] == "C1"
    assert v["SMARTROUTING_NUMBER"] == "+84899990988"
    assert v["SMARTROUTING_IDENTIFIED_BY"] == "number"
    assert v["SMARTROUTING_SOURCE"] == "local"
    assert v["SMARTROUTING_REASON"] == ""


async def test_status_is_the_last_variable_set(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    channel_result = await router.asterisk.call(spec(router))
    assert channel_result.commands[-1].endswith("SMARTROUTING_STATUS=AGENT")


@pytest.mark.parametrize("form", ["0899990988", "84899990988", "+84899990988", "0084899990988"])
async def test_every_form_of_a_number_finds_the_agent(start_router: Any, form: str) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(spec(router, callerid=form))
    assert result.variables["SMARTROUTING_AGENT"] == "104"


async def test_agent_without_customer_carries_default_queues(start_router: Any) -> None:
    router = await start_router(default_queues=("support", "overflow"))
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    v = (await router.asterisk.call(spec(router))).variables
    assert v["SMARTROUTING_STATUS"] == "AGENT"
    assert [v[f"SMARTROUTING_DEST{n}"] for n in range(1, 5)] == ["support", "overflow", "", ""]
    assert v["SMARTROUTING_CUSTOMER"] == ""


async def test_known_customer_by_number(start_router: Any) -> None:
    router = await start_router()
    await router.store.import_customers([ACME])
    result = await router.asterisk.call(spec(router, callerid="+84899990988"))
    assert_clean(result)
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert result.variables["SMARTROUTING_DEST1"] == "207"
    assert result.variables["SMARTROUTING_AGENT"] == ""


async def test_account_entries_win_over_default(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    await router.store.set_route("CL0000", "0899990988", "+84899990988", "200")
    own = await router.asterisk.call(spec(router, script="route?account=CL0000"))
    other = await router.asterisk.call(spec(router, script="route?account=CL9999"))
    assert own.variables["SMARTROUTING_AGENT"] == "200"
    assert other.variables["SMARTROUTING_AGENT"] == "104"


async def test_account_from_agi_argument_and_query_wins(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("CL0001", "0899990988", "+84899990988", "201")
    await router.store.set_route("CL0002", "0899990988", "+84899990988", "202")
    by_arg = await router.asterisk.call(spec(router, script="route", args=("account=CL0001",)))
    both = await router.asterisk.call(
        spec(router, script="route?account=CL0002", args=("account=CL0001",))
    )
    assert by_arg.variables["SMARTROUTING_AGENT"] == "201"
    assert both.variables["SMARTROUTING_AGENT"] == "202"


async def test_unknown_number_identified_by_code(start_router: Any) -> None:
    router = await start_router()
    await router.store.import_customers([BETA])
    result = await router.asterisk.call(
        spec(router, callerid="0911111111", script="route?account=CL0000"),
        [Keypress("5555", delay=0.05)],
    )
    assert_clean(result)
    assert result.commands[:2] == ["ANSWER", "GET DATA agent-pass 5000 8"]
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert v["SMARTROUTING_IDENTIFIED_BY"] == "code"
    assert v["SMARTROUTING_CUSTOMER"] == "C2"
    assert v["SMARTROUTING_ONCALL"] == "1"
    assert v["SMARTROUTING_NUMBER"] == "+84911111111"


async def test_wrong_code_then_right_code(start_router: Any) -> None:
    router = await start_router()
    await router.store.import_customers([ACME])
    result = await router.asterisk.call(
        spec(router, callerid="anonymous"), [Keypress("9999"), Keypress("1234")]
    )
    assert_clean(result)
    assert result.commands == [
        "ANSWER",
        "GET DATA agent-pass 5000 8",
        'STREAM FILE auth-incorrect ""',
        "GET DATA agent-pass 5000 8",
        result.commands[-1],
    ]
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert result.variables["SMARTROUTING_CUSTOMER"] == "C1"
    assert router.metrics.value("codes_total", outcome="rejected") == 1


async def test_all_attempts_wrong(start_router: Any) -> None:
    router = await start_router(prompt={"attempts": 3, "file": "custom/code", "max_digits": 6})
    result = await router.asterisk.call(
        spec(router, callerid="0911111111"), [Keypress("1"), Keypress("22"), Keypress("333")]
    )
    assert_clean(result)
    assert result.commands.count("GET DATA custom/code 5000 6") == 3
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert v["SMARTROUTING_REASON"] == "no_match"
    assert v["SMARTROUTING_DEST1"] == "default"


async def test_partial_digits_on_timeout_count_as_the_attempt(start_router: Any) -> None:
    router = await start_router()
    await router.store.import_customers([ACME])
    result = await router.asterisk.call(
        spec(router, callerid="anonymous"), [Keypress("1234", end="timeout")]
    )
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert result.commands.count("GET DATA agent-pass 5000 8") == 1


async def test_anonymous_caller_who_types_nothing(start_router: Any) -> None:
    router = await start_router(prompt={"attempts": 2})
    result = await router.asterisk.call(spec(router, callerid="anonymous", script=None))
    assert_clean(result)
    assert result.variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert result.variables["SMARTROUTING_REASON"] == "no_code"
    assert result.variables["SMARTROUTING_NUMBER"] == ""
    assert result.variables["SMARTROUTING_IDENTIFIED_BY"] == "none"


async def test_no_prompt_when_attempts_is_zero(start_router: Any) -> None:
    router = await start_router(prompt={"attempts": 0})
    result = await router.asterisk.call(spec(router, callerid="anonymous"))
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_STATUS"] == "UNKNOWN"


async def test_caller_hangs_up_mid_prompt(start_router: Any) -> None:
    router = await start_router()
    result = await router.asterisk.call(
        spec(router, callerid="anonymous"), [Keypress("12", end="hangup", delay=0.05)]
    )
    assert_clean(result)
    assert result.commands == ["ANSWER", "GET DATA agent-pass 5000 8"]
    assert result.status == ""
    assert router.metrics.value("sessions_total", outcome="hangup") == 1


async def test_hangup_line_while_router_thinks_ends_quietly(start_router: Any) -> None:
    hanging = HangingSource()
    router = await start_router(sources=[hanging], deadline_ms=5000)
    result = await router.asterisk.call(
        spec(router, callerid="0911111111"), faults=Faults(hangup_when_idle=0.1), timeout=3
    )
    assert hanging.calls == 1
    assert result.commands == []
    assert result.closed_by == "server"
    assert result.elapsed < 2.0


async def test_hangup_before_the_answer_reply_is_read_first(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(spec(router), faults=Faults(hangup_at=1))
    assert_clean(result)
    assert result.round_trips == 1


async def test_unknown_script_gets_fallback(start_router: Any) -> None:
    router = await start_router()
    result = await router.asterisk.call(spec(router, script="lookup?account=CL0000"))
    assert_clean(result)
    assert result.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert result.variables["SMARTROUTING_REASON"] == "unknown_script"


async def test_no_script_line_is_a_route_request(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(spec(router, script=None))
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"


async def test_deadline_expiry_answers_fallback(start_router: Any) -> None:
    router = await start_router(sources=[HangingSource()], deadline_ms=200)
    result = await router.asterisk.call(spec(router, callerid="0911111111"), timeout=5)
    assert_clean(result)
    assert result.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert result.variables["SMARTROUTING_REASON"] == "timeout"
    assert result.variables["SMARTROUTING_NUMBER"] == "+84911111111"
    assert result.elapsed < 3.0


async def test_prompts_do_not_count_against_the_deadline(start_router: Any) -> None:
    router = await start_router(deadline_ms=300)
    await router.store.import_customers([ACME])
    result = await router.asterisk.call(
        spec(router, callerid="anonymous"),
        [Keypress("9", delay=0.25), Keypress("1234", delay=0.25)],
    )
    assert_clean(result)
    assert result.elapsed > 0.5
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"


async def test_overload_answers_at_once(start_router: Any) -> None:
    router = await start_router(
        sources=[HangingSource()], deadline_ms=1500, agi={"max_sessions": 1}
    )
    first = asyncio.create_task(router.asterisk.call(spec(router, callerid="0911111111")))
    for _ in range(100):
        if router.app.agi.active == 1:
            break
        await asyncio.sleep(0.01)
    second = await router.asterisk.call(spec(router, callerid="0911111112"))
    assert second.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert second.variables["SMARTROUTING_REASON"] == "overload"
    assert second.elapsed < 1.0
    assert not first.done()
    first_result = await first
    assert first_result.variables["SMARTROUTING_REASON"] == "timeout"
    again = await router.asterisk.call(spec(router, callerid="0911111113", script="nope"))
    assert again.variables["SMARTROUTING_REASON"] == "unknown_script"


async def test_internal_error_answers_fallback(start_router: Any) -> None:
    router = await start_router(sources=[FailingSource(RuntimeError("bug"))])
    result = await router.asterisk.call(spec(router, callerid="0911111111"))
    assert_clean(result)
    assert result.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert result.variables["SMARTROUTING_REASON"] == "error"


async def test_source_failure_answers_fallback_with_its_reason(start_router: Any) -> None:
    router = await start_router(sources=[FailingSource(source_error())])
    result = await router.asterisk.call(spec(router, callerid="0911111111"))
    assert result.variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert result.variables["SMARTROUTING_REASON"] == "source_error"


async def test_source_failure_still_routes_a_known_agent(start_router: Any) -> None:
    router = await start_router(sources=[FailingSource(source_error())])
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(spec(router))
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert result.variables["SMARTROUTING_REASON"] == "source_error"


async def test_sources_after_the_store(start_router: Any) -> None:
    remote = DictSource({"+84911111111": ACME}, {"7777": BETA})
    router = await start_router(sources=[remote])
    await router.store.import_customers([ACME])
    local = await router.asterisk.call(spec(router, callerid="0899990988"))
    api = await router.asterisk.call(spec(router, callerid="0911111111"))
    code = await router.asterisk.call(spec(router, callerid="anonymous"), [Keypress("7777")])
    assert local.variables["SMARTROUTING_SOURCE"] == "local"
    assert api.variables["SMARTROUTING_SOURCE"] == "api"
    assert code.variables["SMARTROUTING_SOURCE"] == "api"
    assert code.variables["SMARTROUTING_IDENTIFIED_BY"] == "code"
    assert remote.asked == ["+84911111111", "7777"]


async def test_store_failure_answers_fallback(start_router: Any, tmp_path: Any) -> None:
    inner = await SQLiteStore.open(str(tmp_path / "other.db"))
    await inner.set_route("default", "0899990988", "+84899990988", "104")
    try:
        router = await start_router(store=BrokenStore(inner))
        result = await router.asterisk.call(spec(router))
        assert result.variables["SMARTROUTING_STATUS"] == "FALLBACK"
        assert result.variables["SMARTROUTING_REASON"] == "store_error"
    finally:
        await inner.close()


async def test_invalid_account_is_a_bad_request(start_router: Any) -> None:
    router = await start_router()
    result = await router.asterisk.call(spec(router, script="route?account=a%20b"))
    assert result.variables["SMARTROUTING_REASON"] == "bad_request"


async def test_without_mset_variables_are_set_one_by_one(start_router: Any) -> None:
    router = await start_router()
    router.asterisk.mset_available = False
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(spec(router))
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert result.commands[-1].startswith("SET VARIABLE SMARTROUTING_STATUS")
    assert result.round_trips == 1 + 14


async def test_changes_apply_to_the_very_next_call(start_router: Any) -> None:
    router = await start_router()
    before = await router.asterisk.call(spec(router), [Keypress("")] * 3)
    await router.store.set_route("default", "0899990988", "+84899990988", "105")
    after = await router.asterisk.call(spec(router))
    assert before.variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert after.variables["SMARTROUTING_AGENT"] == "105"
