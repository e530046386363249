"""The availability check end to end: the router asks the fake Asterisk for the agent's
device state with GET FULL VARIABLE, over TCP, and routes or falls through."""

from __future__ import annotations

from typing import Any

import pytest

from fastagi_router.model import Customer
from fastagi_router.simulator import CallSpec, Faults

ACME = Customer(
    account="default",
    customer_id="C1",
    phone_numbers=("+84899990988",),
    destinations=("207", "209", "", ""),
    vip=True,
)
ROUTING = ["NOT_INUSE", "UNKNOWN", "INVALID", ""]
FALLING_THROUGH = ["INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD", "UNAVAILABLE"]


async def _call(router: Any, states: dict[str, str], callerid: str = "0899990988") -> Any:
    router.asterisk.device_states = states
    return await router.asterisk.call(CallSpec(callerid=callerid, port=router.app.agi.port))


async def _agent_104(start_router: Any, **settings: Any) -> Any:
    router = await start_router(availability={"enabled": True, **settings})
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    return router


@pytest.mark.parametrize("state", ROUTING)
async def test_states_that_route_to_the_agent(start_router: Any, state: str) -> None:
    router = await _agent_104(start_router)
    await router.store.import_customers([ACME])
    result = await _call(router, {"PJSIP/104": state} if state else {})
    assert result.commands[0] == "GET FULL VARIABLE ${DEVICE_STATE(PJSIP/104)}"
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "AGENT"
    assert v["SMARTROUTING_AGENT"] == "104"
    assert v["SMARTROUTING_AGENT_STATE"] == state
    assert v["SMARTROUTING_REASON"] == ""


@pytest.mark.parametrize("state", FALLING_THROUGH)
async def test_busy_agent_falls_through_to_the_customer_queues(
    start_router: Any, state: str
) -> None:
    router = await _agent_104(start_router)
    await router.store.import_customers([ACME])
    result = await _call(router, {"PJSIP/104": state})
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert v["SMARTROUTING_AGENT"] == "104"  # still named, for the dialplan and the logs
    assert v["SMARTROUTING_AGENT_STATE"] == state
    assert v["SMARTROUTING_REASON"] == "agent_busy"
    assert (v["SMARTROUTING_DEST1"], v["SMARTROUTING_DEST2"]) == ("207", "209")
    assert (v["SMARTROUTING_CUSTOMER"], v["SMARTROUTING_VIP"]) == ("C1", "1")
    assert router.metrics.value("agent_checks_total", state=state, routed="no") == 1


async def test_busy_agent_without_customer_is_unknown_to_the_default_queues(
    start_router: Any,
) -> None:
    router = await _agent_104(start_router)
    result = await _call(router, {"PJSIP/104": "INUSE"})
    v = result.variables
    assert v["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert v["SMARTROUTING_AGENT"] == "104"
    assert v["SMARTROUTING_REASON"] == "agent_busy"
    assert v["SMARTROUTING_DEST1"] == "default"
    assert v["SMARTROUTING_IDENTIFIED_BY"] == "number"
    assert "ANSWER" not in result.commands  # no code prompt for a recognised caller


async def test_the_check_is_one_extra_round_trip(start_router: Any) -> None:
    router = await _agent_104(start_router)
    result = await _call(router, {"PJSIP/104": "NOT_INUSE"})
    assert result.round_trips == 2
    assert result.commands[0].startswith("GET FULL VARIABLE ")
    assert result.commands[1].startswith("EXEC MSet ")
    assert result.commands[1].endswith("SMARTROUTING_STATUS=AGENT")


async def test_off_by_default_one_round_trip_and_an_empty_state(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await _call(router, {"PJSIP/104": "INUSE"})
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert result.variables["SMARTROUTING_AGENT_STATE"] == ""


async def test_callers_without_a_sticky_agent_are_not_checked(start_router: Any) -> None:
    router = await start_router(availability={"enabled": True})
    await router.store.import_customers([ACME])
    result = await _call(router, {"PJSIP/104": "INUSE"})
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert result.variables["SMARTROUTING_AGENT_STATE"] == ""


async def test_extension_state_template(start_router: Any) -> None:
    router = await _agent_104(start_router, template="${EXTENSION_STATE({agent}@agents)}")
    result = await _call(router, {"104@agents": "HOLDINUSE", "PJSIP/104": "NOT_INUSE"})
    assert result.commands[0] == "GET FULL VARIABLE ${EXTENSION_STATE(104@agents)}"
    assert result.variables["SMARTROUTING_AGENT_STATE"] == "HOLDINUSE"
    assert result.variables["SMARTROUTING_REASON"] == "agent_busy"


async def test_route_states_are_configurable(start_router: Any) -> None:
    router = await _agent_104(start_router, route_states=("NOT_INUSE", "RINGING"))
    ringing = await _call(router, {"PJSIP/104": "RINGING"})
    empty = await _call(router, {})
    assert ringing.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert empty.variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert empty.variables["SMARTROUTING_REASON"] == "agent_busy"


async def test_an_answer_that_is_not_a_state_counts_as_empty(start_router: Any) -> None:
    router = await _agent_104(start_router)
    result = await _call(router, {"PJSIP/104": "not a (state)"})
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert result.variables["SMARTROUTING_AGENT_STATE"] == ""


async def test_every_variable_still_goes_in_one_mset(start_router: Any) -> None:
    router = await _agent_104(start_router)
    await router.store.import_customers([ACME])
    result = await _call(router, {"PJSIP/104": "BUSY"})
    (mset,) = [c for c in result.commands if c.startswith("EXEC MSet ")]
    assert mset.count("=") == 14
    assert "SMARTROUTING_AGENT_STATE=BUSY" in mset


async def test_hangup_during_the_check_ends_quietly(start_router: Any) -> None:
    router = await _agent_104(start_router)
    router.asterisk.device_states = {"PJSIP/104": "INUSE"}
    result = await router.asterisk.call(
        CallSpec(callerid="0899990988", port=router.app.agi.port), faults=Faults(hangup_at=1)
    )
    assert result.commands == ["GET FULL VARIABLE ${DEVICE_STATE(PJSIP/104)}"]
    assert result.status == ""
    assert router.metrics.value("sessions_total", outcome="hangup") == 1
