"""Reading Manager events: which extension served which caller, in which account.

Theory of operation. `CallTracker.feed` takes one Manager event (its headers as a mapping,
as panoramisk parses them: names case-insensitive, a repeated header as a list) and the
time it arrived, and returns a `Served` fact, a `Skipped` verdict saying why an answered
call teaches nothing, or None for the many events that are not about an answer. It does
no I/O and keeps only bounded state.

What the recordings (Asterisk 23, ``ami-transcripts/``) show and this follows:

* A queue call is one ``Linkedid`` that emits ``QueueCallerJoin``, ``AgentCalled`` per
  member rung, ``DialEnd`` (``ANSWER``) for the member leg, then ``AgentConnect`` and, when
  the call ends, ``AgentComplete`` with ``TalkTime``. The caller is ``CallerIDNum`` of
  ``Channel`` (the caller's channel); the agent is the member's ``Interface`` (or its
  ``MemberName``). ``DestExten`` on Local channels is the number the caller dialled, not the
  agent's, so it is never used.
* A direct dial is a ``DialEnd`` with ``DialStatus: ANSWER`` and a ``Channel`` (the caller;
  an originated call has none) whose call never entered a queue: the agent is the answering
  channel ``DestChannel``, named ``<device>-<unique>[;leg]``. The member leg of a queue call
  also ends with ``DialEnd ANSWER``, before ``AgentConnect``; it is recognised by its
  ``Linkedid`` having joined a queue, and skipped, so that queue rules (minimum talk time,
  queue list) cannot be bypassed through it.
* Direct dials carry no talk time: with a minimum talk time, the answer time is kept until
  either leg hangs up, and the difference is the talk time.
* The account is a channel variable the dialplan sets and manager.conf exposes with
  ``channelvars``: ``ChanVariable: NAME=value`` (Asterisk 12 and later; ``DestChanVariable``
  for the answering side), ``ChanVariable(NAME): value``, or Asterisk 11's
  ``ChanVariable(<channel>): NAME=value``. Without it the event belongs to ``default``.

Each (call, agent) pair is learned once, so the inner legs of a Local channel do not write
the same fact twice; a call answered by two agents in turn learns both, the last one last.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastagi_router.config import LearningSettings
from fastagi_router.errors import ValidationError
from fastagi_router.model import DEFAULT_ACCOUNT, check_account, check_token
from fastagi_router.phone import CallerNumber, NumberParser

Event = Mapping[str, Any]

#: The events that can teach something; every other one is dismissed by its name alone.
EVENTS = frozenset(
    {"QueueCallerJoin", "AgentCalled", "AgentConnect", "AgentComplete", "DialEnd", "Hangup"}
)
#: Calls and answered dials remembered at once; the oldest are forgotten first, so that
#: calls whose end was never seen (the link dropped) cannot grow memory.
MAX_TRACKED = 20000


@dataclass(frozen=True, slots=True)
class Served:
    """An answered call that teaches the sticky-agent table: ``number`` was served by
    ``agent`` in ``account``. ``via`` is ``queue`` or ``dial``; ``where`` the queue name or
    the caller's context; ``talk_seconds`` None when the fact was learned on answer."""

    account: str
    number: CallerNumber
    agent: str
    via: str
    where: str
    call: str
    talk_seconds: float | None = None

    def __post_init__(self) -> None:
        check_account(self.account)
        check_token(self.agent, "agent")
        if self.via not in ("queue", "dial"):
            raise ValidationError("via is queue or dial", field="via")


@dataclass(frozen=True, slots=True)
class Skipped:
    """An answered call that teaches nothing, and why (``reason`` is a metric label)."""

    reason: str
    detail: str = ""


class _Headers:
    """One event's headers, case-insensitive, repeated headers kept as lists."""

    __slots__ = ("_values",)

    def __init__(self, event: Event) -> None:
        values: dict[str, list[str]] = {}
        for key, value in event.items():
            if not isinstance(key, str):
                continue
            items = value if isinstance(value, list | tuple) else [value]
            values.setdefault(key.lower(), []).extend(str(v) for v in items)
        self._values = values

    def get(self, name: str) -> str:
        """The first value of header ``name``, "" when absent."""
        found = self._values.get(name.lower())
        return found[0] if found else ""

    def variables(self, prefix: str = "") -> dict[str, str]:
        """The channel variables of one side (``""``: Channel, ``"dest"``: DestChannel),
        names upper-cased."""
        found: dict[str, str] = {}
        plain = prefix + "chanvariable"
        for key, values in self._values.items():
            if key == plain:
                for item in values:
                    name, eq, value = item.partition("=")
                    if eq:
                        found.setdefault(name.strip().upper(), value)
            elif key.startswith(plain + "(") and key.endswith(")"):
                inner = key[len(plain) + 1 : -1]
                if "/" in inner:  # Asterisk 11 names the channel here, the variable after
                    for item in values:
                        name, eq, value = item.partition("=")
                        if eq:
                            found.setdefault(name.strip().upper(), value)
                elif values:
                    found.setdefault(inner.strip().upper(), values[0])
        return found


def device_of(channel: str) -> str:
    """Return the device behind a channel name: ``PJSIP/104-0000002a`` -> ``PJSIP/104``,
    ``Local/104@agents-0000000b;1`` -> ``Local/104@agents``.

    Asterisk names a channel ``<device>-<unique>`` (plus ``;1``/``;2`` for Local channels),
    the unique part after the last ``-``; a name without ``-`` is returned as is.
    """
    device, sep, _unique = channel.rpartition("-")
    return device if sep and "/" in device else channel


class AgentPattern:
    """Extracts an agent's extension from a device with ``learning.agent_pattern``."""

    def __init__(self, pattern: str) -> None:
        self._regex = re.compile(pattern)
        self._group: int | str = "extension" if "extension" in self._regex.groupindex else 1

    def extension(self, device: str) -> str | None:
        """Return the extension in ``device``, or None when the pattern does not match or
        what it matched is not a plain dialplan token."""
        match = self._regex.search(device)
        if match is None:
            return None
        value = match.group(self._group)
        if not value:
            return None
        try:
            return check_token(value, "agent")
        except ValidationError:
            return None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A direct dial answered, waiting for a hang-up to know its talk time."""

    served: Served
    keys: tuple[str, ...]
    answered_at: float
    stamp: float | None


class _Bounded(OrderedDict[str, Any]):
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any = None) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class CallTracker:
    """Turns the Manager event stream into `Served` facts, applying the learning rules."""

    def __init__(
        self, settings: LearningSettings, numbers: NumberParser, *, limit: int = MAX_TRACKED
    ) -> None:
        self.settings = settings
        self.numbers = numbers
        self.pattern = AgentPattern(settings.agent_pattern)
        self._queues = frozenset(q.casefold() for q in settings.queues)
        self._contexts = frozenset(settings.contexts)
        self._variable = settings.account_variable.upper()
        self._queue_calls = _Bounded(limit)
        self._learned = _Bounded(limit)
        self._pending = _Bounded(limit)

    @property
    def tracked(self) -> int:
        """How many calls and dials are remembered now (bounded by ``limit`` each)."""
        return len(self._queue_calls) + len(self._learned) + len(self._pending)

    def feed(self, event: Event, now: float) -> Served | Skipped | None:
        """Take one event that arrived at ``now`` (seconds, any monotonic clock).

        Returns a `Served` fact to record, a `Skipped` verdict for an answered call that
        teaches nothing, or None. Never raises on what the event holds.
        """
        name = event.get("Event")
        if isinstance(name, list | tuple):  # a repeated header: the first one counts
            name = name[0] if name else None
        if not isinstance(name, str) or name not in EVENTS:
            return None  # most of the stream: dismissed by name alone
        if name == "Hangup" and not self._pending:
            return None
        headers = _Headers(event)
        if name in ("QueueCallerJoin", "AgentCalled"):
            self._queue_calls.put(_call(headers))
        elif name == "AgentConnect":
            self._queue_calls.put(_call(headers))
            if self.settings.min_talk_seconds == 0:
                return self._queue(headers, None)
        elif name == "AgentComplete":
            if self.settings.min_talk_seconds > 0:
                return self._completed(headers)
        elif name == "DialEnd":
            return self._dial_end(headers, now)
        elif name == "Hangup":
            return self._hangup(headers, now)
        return None

    # -- queue calls -----------------------------------------------------------------------

    def _completed(self, headers: _Headers) -> Served | Skipped | None:
        try:
            talk = int(headers.get("TalkTime"))
        except ValueError:
            return Skipped("malformed", f"TalkTime {headers.get('TalkTime')[:20]!r}")
        if talk < self.settings.min_talk_seconds:
            return Skipped("short_call", f"talked {talk} s")
        return self._queue(headers, float(talk))

    def _queue(self, headers: _Headers, talk: float | None) -> Served | Skipped | None:
        if "queue" not in self.settings.sources:
            return Skipped("source_off", "queue")
        queue = headers.get("Queue")
        if self._queues and queue.casefold() not in self._queues:
            return Skipped("queue_not_learned", queue)
        if self.settings.agent_from == "member_name":
            agent = _token(headers.get("MemberName"))
        else:
            agent = self.pattern.extension(headers.get("Interface"))
        if agent is None:
            return Skipped("no_agent", headers.get("Interface") or headers.get("MemberName"))
        return self._served(headers, agent, "queue", queue, talk)

    # -- direct dials ----------------------------------------------------------------------

    def _dial_end(self, headers: _Headers, now: float) -> Served | Skipped | None:
        if headers.get("DialStatus") != "ANSWER" or not headers.get("Channel"):
            return None  # not answered, or no caller channel (an originated call)
        call = _call(headers)
        if call in self._queue_calls:
            return None  # a queue's member leg: the queue events decide
        if "dial" not in self.settings.sources:
            return Skipped("source_off", "dial")
        dest = headers.get("DestChannel")
        agent = self.pattern.extension(device_of(dest))
        if agent is None:
            return Skipped("no_agent", dest)
        served = self._served(headers, agent, "dial", headers.get("Context"), None)
        if not isinstance(served, Served) or self.settings.min_talk_seconds == 0:
            return served
        keys = tuple(k for k in (headers.get("Uniqueid"), headers.get("DestUniqueid")) if k)
        pending = _Pending(served, keys, now, _stamp(headers))
        for key in keys:
            self._pending.put(key, pending)
        return None

    def _hangup(self, headers: _Headers, now: float) -> Served | Skipped | None:
        pending: _Pending | None = self._pending.pop(headers.get("Uniqueid"), None)
        if pending is None:
            return None
        for key in pending.keys:
            self._pending.pop(key, None)
        stamp = _stamp(headers)
        if stamp is not None and pending.stamp is not None:
            talk = stamp - pending.stamp  # both carry Asterisk's timestampevents time
        else:
            talk = now - pending.answered_at
        if talk < self.settings.min_talk_seconds:
            return Skipped("short_call", f"talked {talk:.1f} s")
        served = pending.served
        return Served(
            served.account,
            served.number,
            served.agent,
            served.via,
            served.where,
            served.call,
            round(talk, 3),
        )

    # -- common ----------------------------------------------------------------------------

    def _served(
        self, headers: _Headers, agent: str, via: str, where: str, talk: float | None
    ) -> Served | Skipped | None:
        context = headers.get("Context")
        if self._contexts and context not in self._contexts:
            return Skipped("context_not_learned", context)
        number = self.numbers.caller(headers.get("CallerIDNum"))
        if number is None:
            return Skipped("withheld", headers.get("CallerIDNum"))
        if number.key == agent:
            return Skipped("own_extension", agent)
        account = self._account(headers)
        if account is None:
            return Skipped("bad_account", self._raw_account(headers))
        call = _call(headers)
        key = f"{call}\x00{agent}"
        if key in self._learned:
            return None
        self._learned.put(key)
        return Served(account, number, agent, via, where, call, talk)

    def _raw_account(self, headers: _Headers) -> str:
        for side in ("", "dest"):
            value = headers.variables(side).get(self._variable)
            if value:
                return value
        return ""

    def _account(self, headers: _Headers) -> str | None:
        raw = self._raw_account(headers).strip()
        if not raw:
            return DEFAULT_ACCOUNT
        try:
            return check_account(raw)
        except ValidationError:
            return None


def _call(headers: _Headers) -> str:
    """The call an event belongs to: its Linkedid, else (older Asterisk) its Uniqueid."""
    return headers.get("Linkedid") or headers.get("Uniqueid")


def _stamp(headers: _Headers) -> float | None:
    """The ``Timestamp`` header (manager.conf ``timestampevents``), when present."""
    try:
        return float(headers.get("Timestamp"))
    except ValueError:
        return None


def _token(value: str) -> str | None:
    try:
        return check_token(value.strip(), "agent")
    except ValidationError:
        return None
