"""Identification codes under brute force: a minimum length, and limits on wrong codes per
caller number and per account, with the refusal in SMARTROUTING_REASON and the metrics.

The counters are tested with a controllable clock; the calls go through the simulator over
TCP to a real Application.
"""

from __future__ import annotations

from typing import Any

import pytest

from fastagi_router.config import CodesSettings, PromptSettings, load_settings
from fastagi_router.errors import ConfigError
from fastagi_router.model import Customer
from fastagi_router.routing.codes import CodeGuard, FailureCounter
from fastagi_router.simulator import CallSpec, Keypress
from tests.fakes.sources import DictSource
from tests.hardening.support import assert_plain_variables

ACME = Customer(
    account="CL0000",
    customer_id="C1",
    phone_numbers=("+84899990988",),
    code="1234",
    destinations=("207", "", "", ""),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the counters ------------------------------------------------------------------------------


def test_limit_failures_lock_and_one_fewer_does_not() -> None:
    counter = FailureCounter(3, 900, clock=Clock())
    assert [counter.fail("a"), counter.fail("a")] == [False, False]
    assert not counter.locked("a")
    assert counter.fail("a")
    assert counter.locked("a")
    assert not counter.locked("b")


def test_a_locked_key_drains_one_attempt_at_a_time() -> None:
    clock = Clock()
    counter = FailureCounter(3, 900, clock=clock)
    for _ in range(3):
        counter.fail("a")
    clock.now += 299  # one failure drains in 900 / 3 = 300 s
    assert counter.locked("a")
    clock.now += 1
    assert not counter.locked("a")
    assert counter.fail("a")  # the one attempt it got back, used up
    assert counter.locked("a")
    clock.now += 900
    assert not counter.locked("a")
    assert len(counter) == 0  # drained keys are forgotten


def test_limit_zero_counts_nothing() -> None:
    counter = FailureCounter(0, 900, clock=Clock())
    assert not any(counter.fail("a") for _ in range(1000))
    assert not counter.locked("a")
    assert len(counter) == 0


def test_memory_is_bounded_and_the_latest_keys_are_kept() -> None:
    counter = FailureCounter(2, 900, clock=Clock(), max_keys=100)
    for n in range(10_000):
        counter.fail(f"+849{n:08d}")
    assert len(counter) == 100
    counter.fail("+84900009999")
    assert counter.locked("+84900009999")
    assert not counter.locked("+84900000000")


def test_withheld_callers_count_against_the_account_only() -> None:
    guard = CodeGuard(
        CodesSettings(max_failures_per_number=2, max_failures_per_account=5), clock=Clock()
    )
    for _ in range(4):
        assert not guard.failed("CL0000", None)
    assert len(guard.numbers) == 0
    assert not guard.locked("CL0000", "+84911111111")
    assert guard.failed("CL0000", None)
    assert guard.locked("CL0000", None)
    assert guard.locked("CL0000", "+84911111111")  # the whole account's prompt
    assert not guard.locked("CL0001", None)


def test_a_number_is_held_to_its_limit_in_every_account() -> None:
    guard = CodeGuard(CodesSettings(max_failures_per_number=2), clock=Clock())
    guard.failed("CL0000", "+84911111111")
    assert guard.failed("CL0001", "+84911111111")
    assert guard.locked("CL0002", "+84911111111")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FASTAGI_ROUTER_PROMPT_MIN_DIGITS": "9"}, "prompt.min_digits"),
        ({"FASTAGI_ROUTER_PROMPT_MIN_DIGITS": "0"}, "prompt.min_digits"),
        ({"FASTAGI_ROUTER_CODES_MAX_FAILURES_PER_NUMBER": "-1"}, "codes.max_failures_per_number"),
        ({"FASTAGI_ROUTER_CODES_MAX_FAILURES_PER_ACCOUNT": "x"}, "codes.max_failures_per_account"),
        ({"FASTAGI_ROUTER_CODES_WINDOW_S": "0"}, "codes.window_s"),
    ],
)
def test_bad_settings_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_settings_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.prompt.min_digits == PromptSettings().min_digits == 4
    assert settings.codes == CodesSettings(10, 100, 900)


# -- calls -------------------------------------------------------------------------------------


def spec(router: Any, callerid: str = "0911111111", account: str = "CL0000") -> CallSpec:
    return CallSpec(callerid=callerid, script=f"route?account={account}", port=router.app.agi.port)


async def test_short_codes_are_wrong_attempts_without_a_lookup(start_router: Any) -> None:
    source = DictSource({}, {"123": ACME, "1234": ACME})
    router = await start_router(sources=[source])
    result = await router.asterisk.call(spec(router), [Keypress("123"), Keypress("1234")])
    assert source.asked == ["+84911111111", "1234"]  # the number, then only the long code
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert router.metrics.value("codes_total", outcome="too_short") == 1
    assert router.metrics.value("codes_total", outcome="accepted") == 1


async def test_a_code_that_is_not_keypad_digits_is_a_wrong_attempt(start_router: Any) -> None:
    source = DictSource({}, {})
    router = await start_router(sources=[source], prompt={"attempts": 1})
    result = await router.asterisk.call(spec(router), [Keypress("12AB")])
    assert source.asked == ["+84911111111"]
    assert result.variables["SMARTROUTING_REASON"] == "no_match"
    assert router.metrics.value("codes_total", outcome="invalid") == 1


async def test_the_number_limit_stops_the_prompt_then_refuses_it(start_router: Any) -> None:
    router = await start_router(codes={"max_failures_per_number": 3})
    await router.store.import_customers([ACME])
    first = await router.asterisk.call(
        spec(router), [Keypress("1111"), Keypress("2222"), Keypress("3333")]
    )
    assert first.commands.count("GET DATA agent-pass 5000 8") == 3
    assert first.variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert first.variables["SMARTROUTING_REASON"] == "too_many_attempts"
    # Locked: not answered, not prompted, the right code cannot even be typed.
    second = await router.asterisk.call(spec(router), [Keypress("1234")])
    assert second.round_trips == 1
    assert second.commands[0].startswith("EXEC MSet ")
    v = second.variables
    assert (v["SMARTROUTING_STATUS"], v["SMARTROUTING_REASON"]) == ("UNKNOWN", "too_many_attempts")
    assert v["SMARTROUTING_DEST1"] == "default"
    assert v["SMARTROUTING_NUMBER"] == "+84911111111"
    assert_plain_variables(v)
    # Another number in the same account is still prompted, and identified.
    other = await router.asterisk.call(spec(router, callerid="0922222222"), [Keypress("1234")])
    assert other.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert router.metrics.value("codes_total", outcome="rejected") == 3
    assert router.metrics.value("codes_total", outcome="locked") == 2
    assert (
        'fastagi_router_codes_total{outcome="locked"} 2.0' in router.metrics.render().splitlines()
    )


async def test_reaching_the_limit_mid_call_stops_prompting_at_once(start_router: Any) -> None:
    router = await start_router(codes={"max_failures_per_number": 2}, prompt={"attempts": 3})
    result = await router.asterisk.call(
        spec(router), [Keypress("1111"), Keypress("2222"), Keypress("1234")]
    )
    assert result.commands[:-1] == [
        "ANSWER",
        "GET DATA agent-pass 5000 8",
        'STREAM FILE auth-incorrect ""',
        "GET DATA agent-pass 5000 8",
    ]
    assert result.variables["SMARTROUTING_REASON"] == "too_many_attempts"
    assert not result.reset and result.interrupted == 0


async def test_withheld_callers_exhaust_the_account_not_a_number(start_router: Any) -> None:
    router = await start_router(
        codes={"max_failures_per_number": 2, "max_failures_per_account": 4}, prompt={"attempts": 3}
    )
    await router.store.import_customers([ACME])
    await router.store.set_route("CL0000", "0933333333", "+84933333333", "104")
    withheld = spec(router, callerid="anonymous")
    first = await router.asterisk.call(withheld, [Keypress("1111")] * 3)
    assert first.variables["SMARTROUTING_REASON"] == "no_match"  # 3 > the number limit: fine
    second = await router.asterisk.call(withheld, [Keypress("2222")] * 3)
    assert second.commands.count("GET DATA agent-pass 5000 8") == 1  # the 4th wrong code
    assert second.variables["SMARTROUTING_REASON"] == "too_many_attempts"
    # The account's prompt is locked for every caller, withheld or not ...
    for caller in ("anonymous", "0944444444"):
        locked = await router.asterisk.call(spec(router, callerid=caller), [Keypress("1234")])
        assert locked.round_trips == 1
        assert locked.variables["SMARTROUTING_REASON"] == "too_many_attempts"
    # ... but callers recognised by number are routed as ever, and other accounts prompt.
    agent = await router.asterisk.call(spec(router, callerid="0933333333"))
    assert agent.variables["SMARTROUTING_STATUS"] == "AGENT"
    elsewhere = await router.asterisk.call(spec(router, callerid="anonymous", account="CL0001"))
    assert elsewhere.commands[0] == "ANSWER"
    assert elsewhere.variables["SMARTROUTING_REASON"] == "no_code"


async def test_no_limit_when_turned_off(start_router: Any) -> None:
    router = await start_router(
        codes={"max_failures_per_number": 0, "max_failures_per_account": 0},
        prompt={"attempts": 3},
    )
    for _ in range(5):
        result = await router.asterisk.call(spec(router), [Keypress("1111")] * 3)
        assert result.variables["SMARTROUTING_REASON"] == "no_match"
    assert router.metrics.value("codes_total", outcome="rejected") == 15
    assert router.metrics.value("code_failures_tracked") == 0
