"""The event interpreter fed with the recorded streams, parsed as panoramisk parses them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
from panoramisk.message import Message

from fastagi_router.ami.learning import AgentPattern, CallTracker, Served, Skipped, device_of
from fastagi_router.config import DEFAULT_AGENT_PATTERN, LearningSettings
from fastagi_router.phone import NumberParser
from tests.fakes.ami import DIRECT_DIAL, QUEUE_CALL, Recording, load, with_variable

NUMBERS = NumberParser("VN")
QUEUE = load(QUEUE_CALL)
DIAL = load(DIRECT_DIAL)


def parsed(blocks: Iterable[bytes]) -> list[Message]:
    """Each block through panoramisk's own parser, as the live connection does."""
    messages = []
    for block in blocks:
        message = Message.from_line(block.decode("utf-8").strip())
        assert message is not None
        messages.append(message)
    return messages


def run(
    blocks: Iterable[bytes], step: float = 0.1, **settings: Any
) -> tuple[list[Served], list[Skipped]]:
    """Feed ``blocks`` to a tracker, ``step`` seconds apart; return facts and verdicts."""
    tracker = CallTracker(LearningSettings(**settings), NUMBERS)
    served: list[Served] = []
    skipped: list[Skipped] = []
    for n, message in enumerate(parsed(blocks)):
        verdict = tracker.feed(message, now=n * step)
        if isinstance(verdict, Served):
            served.append(verdict)
        elif isinstance(verdict, Skipped):
            skipped.append(verdict)
    return served, skipped


def test_queue_call_learns_the_member_that_answered_on_connect() -> None:
    served, skipped = run(QUEUE.events)
    assert skipped == []
    assert len(served) == 1
    fact = served[0]
    assert (fact.account, fact.number.key, fact.agent) == ("default", "+84899990988", "104")
    assert fact.number.raw == "0899990988"
    assert (fact.via, fact.where, fact.call, fact.talk_seconds) == (
        "queue",
        "support",
        "1795654442.20",
        None,
    )


def test_queue_member_leg_dial_end_teaches_nothing_by_itself() -> None:
    # The member leg's DialEnd ANSWER comes before AgentConnect; cut the stream there.
    before_connect = QUEUE.events[: QUEUE.index("AgentConnect")]
    assert b"DialStatus: ANSWER" in b"".join(before_connect[QUEUE.index("AgentCalled") :])
    assert run(before_connect) == ([], [])


def test_talk_time_at_or_over_the_minimum_learns_on_agent_complete() -> None:
    served, _ = run(QUEUE.events, min_talk_seconds=3)
    assert [(f.agent, f.talk_seconds) for f in served] == [("104", 3.0)]
    connect_only = QUEUE.events[: QUEUE.index("AgentComplete")]
    assert run(connect_only, min_talk_seconds=3) == ([], [])


def test_agent_who_talks_less_than_the_minimum_teaches_nothing() -> None:
    served, skipped = run(QUEUE.events, min_talk_seconds=4)
    assert served == []
    assert skipped == [Skipped("short_call", "talked 3 s")]


def test_direct_dial_learns_the_dialled_channel() -> None:
    served, skipped = run(DIAL.events)
    assert skipped == []
    assert [(f.number.key, f.agent, f.via, f.where) for f in served] == [
        ("+84899990977", "104", "dial", "dial-in")
    ]


def _answered_channel_hangup(recording: Recording) -> int:
    """Position of the Hangup of the channel that answered the direct dial (.16)."""
    for n in range(1, 10):
        position = recording.index("Hangup", n)
        if b"Uniqueid: 1795654423.16\r\n" in recording.events[position]:
            return position
    raise LookupError


def test_direct_dial_with_minimum_talk_is_timed_from_answer_to_hangup() -> None:
    # 0.1 s between events: the talk time is the span from DialEnd to the first hang-up of
    # either leg of the dial (here the answering Local channel, not its ;2 half).
    answered = DIAL.index("DialEnd", 1)
    span = (_answered_channel_hangup(DIAL) - answered) * 0.1
    served, _ = run(DIAL.events, step=0.1, min_talk_seconds=1)
    assert [(f.agent, f.talk_seconds) for f in served] == [("104", pytest.approx(span))]
    served, skipped = run(DIAL.events, step=0.01, min_talk_seconds=1)
    assert served == []
    assert [s.reason for s in skipped] == ["short_call"]


def test_direct_dial_timed_by_asterisk_timestamps_when_both_carry_one() -> None:
    blocks = list(DIAL.events)
    answered = DIAL.index("DialEnd", 1)
    hangup = _answered_channel_hangup(DIAL)
    blocks[answered] = blocks[answered].replace(
        b"Privilege: call,all\r\n", b"Privilege: call,all\r\nTimestamp: 1000.0\r\n"
    )
    blocks[hangup] = blocks[hangup].replace(
        b"Privilege: call,all\r\n", b"Privilege: call,all\r\nTimestamp: 1012.5\r\n"
    )
    served, _ = run(blocks, step=0.0, min_talk_seconds=10)
    assert [f.talk_seconds for f in served] == [12.5]


def test_event_for_a_queue_that_does_not_learn() -> None:
    served, skipped = run(QUEUE.events, queues=("sales", "billing"))
    assert served == []
    assert skipped == [Skipped("queue_not_learned", "support")]
    assert len(run(QUEUE.events, queues=("SUPPORT",))[0]) == 1


def test_contexts_limit_learning_to_the_caller_context() -> None:
    assert run(DIAL.events, contexts=("from-pstn",)) == (
        [],
        [Skipped("context_not_learned", "dial-in")],
    )
    assert len(run(DIAL.events, contexts=("dial-in",))[0]) == 1
    assert len(run(QUEUE.events, contexts=("queue-in",))[0]) == 1


def test_sources_switch_queue_or_dial_learning_off() -> None:
    assert run(DIAL.events, sources=("queue",)) == ([], [Skipped("source_off", "dial")])
    assert run(QUEUE.events, sources=("dial",)) == ([], [Skipped("source_off", "queue")])


@pytest.mark.parametrize("form", ["12", "11", "named"])
def test_account_from_the_channel_variable(form: str) -> None:
    blocks = [with_variable(b, "SR_ACCOUNT", "CL0000", form) for b in QUEUE.events]
    served, _ = run(blocks)
    assert [f.account for f in served] == ["CL0000"]


def test_account_variable_name_is_configurable_and_other_variables_are_ignored() -> None:
    blocks = [with_variable(b, "OTHER", "CL9999") for b in DIAL.events]
    assert [f.account for f in run(blocks)[0]] == ["default"]
    assert [f.account for f in run(blocks, account_variable="OTHER")[0]] == ["CL9999"]


def test_account_from_the_answering_side_when_the_caller_has_none() -> None:
    block = DIAL.events[DIAL.index("DialEnd", 1)]
    only_dest = block.replace(
        b"DestLinkedid: 1795654423.14\r\n",
        b"DestLinkedid: 1795654423.14\r\nDestChanVariable: SR_ACCOUNT=CL0007\r\n",
    )
    assert [f.account for f in run([only_dest])[0]] == ["CL0007"]


def test_an_invalid_account_value_is_skipped_not_put_in_default() -> None:
    blocks = [with_variable(b, "SR_ACCOUNT", "CL 0000,x") for b in DIAL.events]
    assert run(blocks) == ([], [Skipped("bad_account", "CL 0000,x")])


def test_member_name_as_the_extension() -> None:
    blocks = [b.replace(b"MemberName: Agent 104", b"MemberName: 2104") for b in QUEUE.events]
    assert [f.agent for f in run(blocks, agent_from="member_name")[0]] == ["2104"]
    assert run(QUEUE.events, agent_from="member_name") == (
        [],
        [Skipped("no_agent", "Local/104@agents")],
    )


def test_each_call_and_agent_is_learned_once() -> None:
    # Replaying a call twice (a Local channel's inner leg, a duplicated stream) writes once.
    served, _ = run([*DIAL.events, *DIAL.events])
    assert len(served) == 1


def test_withheld_caller_teaches_nothing() -> None:
    blocks = [b.replace(b"CallerIDNum: 0899990977", b"CallerIDNum: <unknown>") for b in DIAL.events]
    assert run(blocks) == ([], [Skipped("withheld", "<unknown>")])


@pytest.mark.parametrize(
    "event",
    [
        {
            "Event": "AgentConnect",
            "Queue": "support",
            "Linkedid": "1.1",
            "CallerIDNum": "0899990988",
        },
        {
            "Event": "AgentComplete",
            "Queue": "support",
            "TalkTime": "soon",
            "Interface": "PJSIP/104",
        },
        {"Event": "DialEnd", "DialStatus": "ANSWER", "Channel": "PJSIP/trunk-00000001"},
        {"Event": ["DialEnd", "Hangup"], "DialStatus": "ANSWER"},
        {"Nothing": "at all"},
        {},
        {"Event": "Hangup"},
    ],
)
def test_malformed_events_are_skipped_without_raising(event: dict[str, Any]) -> None:
    tracker = CallTracker(LearningSettings(min_talk_seconds=1), NUMBERS)
    verdict = tracker.feed(event, now=0.0)
    assert verdict is None or isinstance(verdict, Skipped)
    tracker = CallTracker(LearningSettings(), NUMBERS)
    verdict = tracker.feed(event, now=0.0)
    assert verdict is None or isinstance(verdict, Skipped)


def test_tracking_is_bounded_when_hangups_never_come() -> None:
    settings = LearningSettings(min_talk_seconds=5)
    tracker = CallTracker(settings, NUMBERS, limit=100)
    block = parsed([DIAL.events[DIAL.index("DialEnd", 1)]])[0]
    for n in range(1000):
        event = {
            **dict(block.items()),
            "Linkedid": f"call-{n}",
            "Uniqueid": f"a-{n}",
            "DestUniqueid": f"b-{n}",
        }
        assert tracker.feed(event, now=float(n)) is None
    assert tracker.tracked <= 300


@pytest.mark.parametrize(
    ("channel", "device"),
    [
        ("PJSIP/104-0000002a", "PJSIP/104"),
        ("SIP/104-0000001", "SIP/104"),
        ("Local/104@agents-0000000b;1", "Local/104@agents"),
        ("Local/104@from-agents-0000000b;2", "Local/104@from-agents"),
        ("PJSIP/agent-104-00000001", "PJSIP/agent-104"),
        ("IAX2/104-7", "IAX2/104"),
        ("PJSIP/104", "PJSIP/104"),
    ],
)
def test_device_of_a_channel_name(channel: str, device: str) -> None:
    assert device_of(channel) == device


@pytest.mark.parametrize(
    ("device", "extension"),
    [
        ("PJSIP/104", "104"),
        ("Local/104@agents", "104"),
        ("Local/104@agents/n", "104"),
        ("SIP/104", "104"),
        ("IAX2/104", "104"),
        ("PJSIP/agent-104", "agent-104"),
        ("PJSIP/104/sip:104@192.0.2.1", "104"),
        ("Custom:agent104", None),
        ("", None),
        ("PJSIP/10(4)", None),
    ],
)
def test_default_agent_pattern(device: str, extension: str | None) -> None:
    assert AgentPattern(DEFAULT_AGENT_PATTERN).extension(device) == extension


def test_custom_agent_pattern() -> None:
    pattern = AgentPattern(r"^PJSIP/agent-(\d+)$")
    assert pattern.extension("PJSIP/agent-104") == "104"
    assert pattern.extension("Local/104@agents") is None
    blocks = [b.replace(b"Local/104@agents", b"PJSIP/agent-104") for b in QUEUE.events]
    served, _ = run(blocks, agent_pattern=r"^PJSIP/agent-(?P<extension>\d+)")
    assert [f.agent for f in served] == ["104"]


def test_recording_helpers_are_faithful() -> None:
    # Guard the fixtures: the recordings are replayed byte for byte.
    assert isinstance(QUEUE, Recording)
    raw = (QUEUE.banner + b"".join(QUEUE.after_login)).decode()
    assert raw.startswith("Asterisk Call Manager/12.0.0\r\nEvent: FullyBooted\r\n")
    assert all(b.endswith(b"\r\n\r\n") and b.count(b"\r\n\r\n") == 1 for b in QUEUE.events)
    assert dataclasses.is_dataclass(QUEUE)


def test_local_channel_agents_can_keep_their_context() -> None:
    # For a dialplan that dials Local/${SMARTROUTING_AGENT} with agents written 104@agents.
    pattern = r"^Local/(?P<extension>[^/;]+)"
    assert [f.agent for f in run(QUEUE.events, agent_pattern=pattern)[0]] == ["104@agents"]
    assert [f.agent for f in run(DIAL.events, agent_pattern=pattern)[0]] == ["104@agents"]
