"""A hang-up, or a close, at every point of every shape of call.

The points are generated, not picked: each shape's clean call is run first and its commands
counted (`test_clean_call_shapes` pins the counts), then the session is broken at every
command in every way Asterisk can break it: the simulator's ``Faults(hangup_at=N)``,
``Faults(close_at=N)``, a hang-up during each prompt, ``hangup_when_idle`` while the router
waits on a slow source (with and without the ``HANGUP`` line), and `support.scripted`'s
ways (``HANGUP`` before or after the reply, a close before or after it, half a reply, a
reset). Every break ends quietly: the router sends nothing after it learned of the hang-up,
no reset, nothing sent while a prompt played, each session counted once, a good call in the
middle answered, and no connection left over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from fastagi_router.model import Customer
from fastagi_router.phone import CallerNumber
from fastagi_router.routing import Found
from fastagi_router.simulator import CallSpec, Faults, Keypress
from tests.hardening.support import (
    ACTIONS,
    alongside,
    assert_plain_variables,
    assert_quiet,
    scripted,
    seed_good_caller,
    settle,
)

ACME = Customer(account="default", customer_id="C1", code="1234", destinations=("207", "", "", ""))
WRONG = [Keypress("1111"), Keypress("2222"), Keypress("3333")]
#: Wrong codes are not limited here: the same number fails over and over on purpose.
NO_LIMITS = {"max_failures_per_number": 0, "max_failures_per_account": 0}


class SlowSource:
    """Knows nobody, and takes its time saying so: the router is busy, not talking."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def by_number(self, account: str, number: CallerNumber, **_: Any) -> Found | None:
        await asyncio.sleep(self.delay)
        return None

    async def by_code(self, account: str, code: str, **_: Any) -> Found | None:
        await asyncio.sleep(self.delay)
        return None


@dataclass
class Shape:
    """One kind of call: how to start the router, who calls, what they type, what it costs."""

    name: str
    callerid: str
    keypresses: list[Keypress]
    commands: int
    status: str
    settings: dict[str, Any] = field(default_factory=dict)
    sources: Callable[[], list[Any]] = list
    prompts: int = 0

    async def start(self, start_router: Any) -> Any:
        router = await start_router(
            sources=self.sources(), codes=NO_LIMITS, deadline_ms=5000, **self.settings
        )
        await seed_good_caller(router)
        await router.store.set_route("default", "0877777777", "+84877777777", "105")
        await router.store.import_customers([ACME])
        return router

    def spec(self, router: Any, n: int = 0) -> CallSpec:
        return CallSpec(callerid=self.callerid, port=router.app.agi.port, uniqueid=f"h.{n}")


SHAPES = [
    Shape("recognised", "0877777777", [], 1, "AGENT"),
    Shape("recognised-checked", "0877777777", [], 2, "AGENT", {"availability": {"enabled": True}}),
    *(
        Shape(
            f"prompt-{n}",
            "0911111111",
            WRONG[:n],
            2 * n + 1,
            "UNKNOWN",
            {"prompt": {"attempts": n}},
            prompts=n,
        )
        for n in (1, 2, 3)
    ),
    Shape("prompt-3-found", "anonymous", [*WRONG[:2], Keypress("1234")], 7, "CUSTOMER", prompts=3),
    Shape(
        "prompt-2-slow-sources",
        "0911111111",
        WRONG[:2],
        5,
        "UNKNOWN",
        {"prompt": {"attempts": 2}},
        sources=lambda: [SlowSource(0.05)],
        prompts=2,
    ),
]
IDS = [s.name for s in SHAPES]


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastagi_router")


async def finish(router: Any, caplog: Any, calls: int) -> None:
    """The server is back to no connection, counted each session once, logged no error."""
    await settle(router.app.agi)
    assert router.metrics.total("sessions_total") == calls
    assert_quiet(caplog, max_warnings=calls)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
async def test_clean_call_shapes(start_router: Any, caplog: Any, shape: Shape) -> None:
    router = await shape.start(start_router)
    result = await router.asterisk.call(shape.spec(router), shape.keypresses, timeout=10)
    assert len(result.commands) == shape.commands, result.commands
    assert result.status == shape.status
    assert not result.reset and result.interrupted == 0 and result.closed_by == "server"
    assert_plain_variables(result.variables)
    await finish(router, caplog, 1)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("fault", ["hangup_at", "close_at"])
async def test_simulator_fault_at_every_command(
    start_router: Any, caplog: Any, shape: Shape, fault: str
) -> None:
    router = await shape.start(start_router)
    for n in range(1, shape.commands + 1):
        [result] = await alongside(
            router,
            router.asterisk.call(
                shape.spec(router, n), shape.keypresses, Faults(**{fault: n}), timeout=10
            ),
        )
        assert len(result.commands) == n, (fault, n, result.commands)
        assert not result.reset and result.interrupted == 0
        if fault == "close_at":
            assert result.closed_by == "asterisk"
            assert result.status == ""
        else:
            assert result.closed_by == "server"
            # The answer is the last command: set when the hang-up came with its reply.
            assert result.status == (shape.status if n == shape.commands else "")
        assert_plain_variables(result.variables)
    await finish(router, caplog, 2 * shape.commands)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s.prompts], ids=lambda s: s.name)
async def test_hangup_during_every_prompt(start_router: Any, caplog: Any, shape: Shape) -> None:
    router = await shape.start(start_router)
    for k in range(1, shape.prompts + 1):
        presses = [*shape.keypresses[: k - 1], Keypress("12", end="hangup")]
        [result] = await alongside(
            router, router.asterisk.call(shape.spec(router, k), presses, timeout=10)
        )
        assert len(result.commands) == 2 * k  # ANSWER, then GET DATA and the invalid prompt
        assert result.commands[-1].startswith("GET DATA ")
        assert result.status == ""
        assert not result.reset and result.interrupted == 0 and result.closed_by == "server"
    await finish(router, caplog, 2 * shape.prompts)
    assert router.metrics.value("sessions_total", outcome="hangup") == shape.prompts


@pytest.mark.parametrize("sighup", [True, False], ids=["HANGUP-line", "AGISIGHUP=no"])
async def test_hangup_while_the_router_waits_on_a_source(
    start_router: Any, caplog: Any, sighup: bool
) -> None:
    shape = dataclasses.replace(SHAPES[-1], sources=lambda: [SlowSource(0.5)])
    router = await shape.start(start_router)
    [result] = await alongside(
        router,
        router.asterisk.call(
            shape.spec(router),
            shape.keypresses,
            Faults(hangup_when_idle=0.05, no_sighup=not sighup),
            timeout=10,
        ),
    )
    assert not result.reset and result.interrupted == 0 and result.closed_by == "server"
    if sighup:
        # Told while it waited: it stops there and sends nothing at all.
        assert result.commands == []
        assert result.status == ""
    else:
        # Never told: it goes on, Asterisk refuses what a dead channel cannot do (511),
        # and the answer still lands (EXEC works on a dead channel).
        assert len(result.commands) == shape.commands
        assert result.status == "UNKNOWN"
    await finish(router, caplog, 2)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("action", ACTIONS)
async def test_scripted_break_at_every_command(
    start_router: Any, caplog: Any, shape: Shape, action: str
) -> None:
    router = await shape.start(start_router)
    for n in range(1, shape.commands + 1):
        [played] = await alongside(
            router,
            scripted(
                router.app.agi.port, shape.spec(router, n), shape.keypresses, at=n, action=action
            ),
        )
        assert len(played.commands) == n, (action, n, played.commands)
        assert not played.reset, (action, n)
        assert played.closed_by in ("server", "asterisk")
        executed = action not in ("close_before_reply", "reset_before_reply")
        expected = shape.status if executed and n == shape.commands else ""
        assert played.variables.get("SMARTROUTING_STATUS", "") == expected, (action, n)
        assert_plain_variables(played.variables)
    await finish(router, caplog, 2 * shape.commands)
