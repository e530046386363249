"""The availability check: is the sticky agent free to take the call?

Before a call goes to its sticky agent, one ``GET FULL VARIABLE`` asks Asterisk for the
agent's state (``${DEVICE_STATE(PJSIP/104)}``, or any expression the template gives, such as
``${EXTENSION_STATE(104@agents)}``). The call goes to the agent only in the configured
states; otherwise it falls through to the customer's queues (STATUS ``CUSTOMER``) or the
default queues (``UNKNOWN``), SMARTROUTING_AGENT still naming the agent and
SMARTROUTING_AGENT_STATE saying why, with reason ``agent_busy``.

This costs one round trip per call to a sticky agent, which is why it is off by default.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from fastagi_router.agi import commands
from fastagi_router.config import DEVICE_STATES, AvailabilitySettings
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics
from fastagi_router.routing.decision import Decision, Status
from fastagi_router.server.session import Session

log = logging.getLogger("fastagi_router.routing")

#: What a state name looks like; anything else in the answer is not a state.
_STATE = re.compile(r"[A-Z_]{1,32}")
#: The name for an empty answer in ``availability.route_states``.
EMPTY = "EMPTY"


class AgentCheck:
    """Asks Asterisk for the sticky agent's state and decides whether the call goes to it."""

    def __init__(self, settings: AvailabilitySettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._routes = frozenset(state.upper() for state in settings.route_states)
        metrics.describe(
            "agent_checks_total", "counter", "Sticky-agent availability checks by state"
        )

    async def apply(self, session: Session, decision: Decision) -> Decision:
        """Return ``decision`` (an AGENT one) with the agent's state, or fallen through.

        One round trip. Raises `CallEnded` when the caller hung up meanwhile.
        """
        state = await self.state(session, decision.agent)
        routes = (state or EMPTY) in self._routes
        # A label takes a known state name only: Asterisk's answer could be any word.
        known = state or EMPTY
        self.metrics.inc(
            "agent_checks_total",
            state=known if known in DEVICE_STATES else "other",
            routed="yes" if routes else "no",
        )
        if routes:
            return dataclasses.replace(decision, agent_state=state)
        log.info(
            "[%s] agent %s is %s: not sending the call to it",
            sanitize(session.uniqueid),
            decision.agent,
            state or EMPTY,
        )
        return dataclasses.replace(
            decision,
            status=Status.CUSTOMER if decision.customer else Status.UNKNOWN,
            agent_state=state,
            reason="agent_busy",
        )

    async def state(self, session: Session, agent: str) -> str:
        """Return ``agent``'s state as Asterisk names it, "" for an empty or unusable answer.

        ``agent`` is a validated dialplan token, so it cannot close the function call or open
        another ``${...}`` inside the expression. Raises `CallEnded` on hang-up.
        """
        reply = await session.command(commands.get_full_variable(self.settings.expression(agent)))
        if reply.code != 200 or reply.result != "1":
            log.warning(
                "[%s] no device state for agent %s: %s",
                sanitize(session.uniqueid),
                agent,
                sanitize(reply.text),
            )
            return ""
        text = (reply.data or "").strip().upper()
        if text and not _STATE.fullmatch(text):
            log.warning(
                "[%s] device state of agent %s is not a state name: %s",
                sanitize(session.uniqueid),
                agent,
                sanitize(text),
            )
            return ""
        return text
