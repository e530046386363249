"""What the engine sends for a handler's answer, over a real TCP server and the fake Asterisk."""

from __future__ import annotations

import dataclasses

import pytest

from fastagi_router.agi import AGIRequest
from fastagi_router.config import AGISettings, Settings
from fastagi_router.metrics import Metrics
from fastagi_router.server import AGIServer, Answer
from fastagi_router.server.session import Session
from fastagi_router.simulator import Asterisk, CallResult, CallSpec

#: A value with a line feed: no AGI command can carry it.
UNSENDABLE = Answer([("SMARTROUTING_NAME", "a\nb"), ("SMARTROUTING_STATUS", "AGENT")], "AGENT")
FINE = Answer([("SMARTROUTING_AGENT", "104"), ("SMARTROUTING_STATUS", "AGENT")], "AGENT")
#: A value MSet would cut at its comma: it goes first, in a SET VARIABLE of its own.
NOT_FOR_MSET = Answer(
    [
        ("SMARTROUTING_NAME", "Smith, John"),
        ("SMARTROUTING_AGENT", "104"),
        ("SMARTROUTING_STATUS", "AGENT"),
    ],
    "AGENT",
)


def fallback(request: AGIRequest, reason: str) -> Answer:
    return Answer(
        [("SMARTROUTING_REASON", reason), ("SMARTROUTING_STATUS", "FALLBACK")],
        "FALLBACK",
        reason=reason,
    )


async def serve_and_call(answer: Answer, *, fast: bool, mset: bool = True) -> CallResult:
    async def handler(session: Session) -> Answer:
        return answer

    settings = Settings(agi=AGISettings(listen="127.0.0.1:0"))
    server = AGIServer(
        settings,
        {"route": handler},
        fallback,
        Metrics(),
        fast_handlers={"route": lambda request: answer} if fast else None,
    )
    await server.start()
    try:
        asterisk = Asterisk("127.0.0.1", server.port, mset_available=mset)
        result = await asterisk.call(CallSpec(port=server.port))
    finally:
        await server.stop(grace=1.0)
    assert result.closed_by == "server"
    return result


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "task"])
async def test_an_answer_no_command_can_carry_becomes_a_fallback(fast: bool) -> None:
    variables = (await serve_and_call(UNSENDABLE, fast=fast)).variables
    assert variables["SMARTROUTING_STATUS"] == "FALLBACK"
    assert variables["SMARTROUTING_REASON"] == "error"
    assert "SMARTROUTING_NAME" not in variables


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "task"])
async def test_an_answer_is_sent_as_it_is(fast: bool) -> None:
    variables = (await serve_and_call(FINE, fast=fast)).variables
    assert variables == {"SMARTROUTING_AGENT": "104", "SMARTROUTING_STATUS": "AGENT"}


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "task"])
async def test_without_mset_an_answer_whose_mset_is_not_first_is_set_one_by_one(
    fast: bool,
) -> None:
    result = await serve_and_call(NOT_FOR_MSET, fast=fast, mset=False)
    assert result.variables == dict(NOT_FOR_MSET.variables)
    assert result.commands[-1].startswith("SET VARIABLE SMARTROUTING_STATUS")


def test_an_answer_builds_its_commands_once() -> None:
    answer = dataclasses.replace(FINE)
    assert answer.commands() is answer.commands()
    assert [c.line for c in answer.commands()] == [
        "EXEC MSet SMARTROUTING_AGENT=104,SMARTROUTING_STATUS=AGENT"
    ]
    assert answer == FINE  # what is kept is not part of the value
