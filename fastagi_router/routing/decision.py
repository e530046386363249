"""The routing decision and the channel variables that carry it to the dialplan.

The contract with the dialplan (README, "Channel variables")::

    SMARTROUTING_STATUS          AGENT | CUSTOMER | UNKNOWN | FALLBACK   (always set, set last)
    SMARTROUTING_AGENT           the sticky agent's extension, or empty
    SMARTROUTING_AGENT_STATE     the agent's device state when it was checked, or empty
    SMARTROUTING_DEST1..DEST4    destination queues in order, empty when unused
    SMARTROUTING_VIP             1 | 0
    SMARTROUTING_ONCALL          1 | 0
    SMARTROUTING_CUSTOMER        the customer id, or empty
    SMARTROUTING_NUMBER          the caller number in E.164, else the digits received
    SMARTROUTING_IDENTIFIED_BY   number | code | none
    SMARTROUTING_SOURCE          local | cache | api | stale | none
    SMARTROUTING_REASON          empty, or one word from `REASONS`

All of them are sent in one ``EXEC MSet`` when every value is MSet-safe (the usual case:
they are validated tokens); any other value goes first through ``SET VARIABLE``, so that
``SMARTROUTING_STATUS``, always in the last command, is never visible before the rest.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PREFIX = "SMARTROUTING_"


class Status(enum.StrEnum):
    """What the dialplan should do with the call."""

    AGENT = "AGENT"  # dial SMARTROUTING_AGENT first, then the DEST queues
    CUSTOMER = "CUSTOMER"  # queue to the DEST queues in order
    UNKNOWN = "UNKNOWN"  # not identified: the default queues
    FALLBACK = "FALLBACK"  # the router could not decide: the default queues


#: Every SMARTROUTING_REASON the router sets, with its meaning (documented in the README).
REASONS: dict[str, str] = {
    "no_match": "the caller was not found by number, nor by any code typed",
    "no_code": "the caller was not found by number and typed no code",
    "timeout": "the router's per-call deadline expired before a decision",
    "overload": "the router was at its concurrent-session limit",
    "error": "an internal error (logged with the call's uniqueid)",
    "unknown_script": "the AGI URL names a script this router does not serve",
    "bad_request": "the AGI URL carries an invalid parameter (e.g. account)",
    "store_error": "the local store could not be read",
    "source_error": "a customer source beyond the local store failed",
    "upstream_timeout": "the upstream API did not answer within the call's budget",
    "upstream_unavailable": "the upstream API was unreachable, reset, or answered 5xx",
    "upstream_bad_answer": "the upstream API answered something that is not usable JSON",
    "upstream_bad_request": "the upstream API refused the request as malformed (400)",
    "upstream_denied": "the upstream API refused the token for the account (401/403)",
    "circuit_open": "the upstream API failed repeatedly and is not being asked for now",
    "hangup": "the caller hung up (no variables are set; counted in metrics)",
    "agent_busy": "the sticky agent's state was not one that routes (availability check)",
    "too_many_attempts": "too many wrong codes from this number or account: not prompted",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a call goes, and why. Build the usual ones with the class methods."""

    status: Status
    agent: str = ""
    destinations: tuple[str, ...] = ()
    vip: bool = False
    oncall: bool = False
    customer: str = ""
    number: str = ""
    identified_by: str = "none"
    source: str = "none"
    reason: str = ""
    #: The agent's state as Asterisk answered it, when availability was checked.
    agent_state: str = ""

    def __post_init__(self) -> None:
        if len(self.destinations) > 4:
            raise ValueError("at most four destinations")
        if self.reason and self.reason not in REASONS:
            raise ValueError(f"undocumented reason {self.reason!r}")

    @classmethod
    def fallback(cls, reason: str, default_queues: tuple[str, ...], number: str = "") -> Decision:
        """The answer when the router cannot decide: FALLBACK to the default queues."""
        return cls(Status.FALLBACK, destinations=default_queues, number=number, reason=reason)

    def variables(self) -> list[tuple[str, str]]:
        """Return every variable to set, in order, ``SMARTROUTING_STATUS`` last."""
        slots = (*self.destinations, "", "", "", "")[:4]
        return [
            (PREFIX + "AGENT", self.agent),
            (PREFIX + "AGENT_STATE", self.agent_state),
            (PREFIX + "DEST1", slots[0]),
            (PREFIX + "DEST2", slots[1]),
            (PREFIX + "DEST3", slots[2]),
            (PREFIX + "DEST4", slots[3]),
            (PREFIX + "VIP", "1" if self.vip else "0"),
            (PREFIX + "ONCALL", "1" if self.oncall else "0"),
            (PREFIX + "CUSTOMER", self.customer),
            (PREFIX + "NUMBER", self.number),
            (PREFIX + "IDENTIFIED_BY", self.identified_by),
            (PREFIX + "SOURCE", self.source),
            (PREFIX + "REASON", self.reason),
            (PREFIX + "STATUS", str(self.status)),
        ]
