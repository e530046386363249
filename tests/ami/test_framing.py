"""The Manager protocol's own framing, with a stub transport: events handled in slices over
several loop iterations, unwanted events dismissed unparsed, messages bounded."""

from __future__ import annotations

import asyncio
from typing import Any

from fastagi_router.ami.listener import MAX_MESSAGE_BYTES, SLICE_CHARS, _Protocol
from tests.fakes.ami import QUEUE_CALL, load

QUEUE = load(QUEUE_CALL)


class Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.aborted = False

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        pass


class Factory:
    """What the protocol needs of the manager."""

    def __init__(self, wanted: frozenset[str] | None = None) -> None:
        self.wanted = wanted
        self.counted = 0
        self.events: list[Any] = []
        self.lost = ""
        self.save_stream = None

    def received(self, count: int) -> None:
        self.counted += count

    def dispatch(self, message: Any) -> None:
        self.events.append(message)

    def note_lost(self, reason: str) -> None:
        self.lost = reason


def protocol(factory: Factory) -> tuple[_Protocol, Transport]:
    proto = _Protocol()
    transport = Transport()
    proto.connection_made(transport)
    proto.factory = factory
    proto.encoding = "utf-8"
    return proto, transport


async def settle(proto: _Protocol) -> None:
    """Let the loop run until the protocol has no slice left to handle."""
    for _ in range(1000):
        if not proto._scheduled:
            return
        await asyncio.sleep(0)
    raise AssertionError("slices still pending")


async def test_a_burst_is_handled_a_slice_per_loop_iteration() -> None:
    factory = Factory()
    proto, transport = protocol(factory)
    burst = b"".join(QUEUE.events) * 3
    assert len(burst) > 4 * SLICE_CHARS
    proto.data_received(burst)
    total = burst.count(b"\r\n\r\n")
    first = len(factory.events)
    assert 0 < first < total / 4  # only the first slice now
    assert transport.paused
    iterations = 0
    while len(factory.events) < total:
        await asyncio.sleep(0)
        iterations += 1
        assert iterations < 100
    assert iterations >= 4
    assert not transport.paused
    assert factory.counted == total
    assert [e["Event"] for e in factory.events[:3]] == ["Newchannel", "Newchannel", "Newexten"]


async def test_unwanted_events_are_counted_not_parsed() -> None:
    factory = Factory(frozenset({"AgentConnect", "DialEnd"}))
    proto, _ = protocol(factory)
    proto.data_received(b"".join(QUEUE.events) + b"Response: Success\r\nActionID: x\r\n\r\n")
    await settle(proto)
    assert factory.counted == len(QUEUE.events)
    assert [e["Event"] for e in factory.events] == ["DialEnd"] * 4 + ["AgentConnect"]


async def test_a_message_split_anywhere_is_whole() -> None:
    factory = Factory()
    proto, _ = protocol(factory)
    block = QUEUE.events[QUEUE.index("AgentConnect")]
    for n in range(len(block)):
        proto.data_received(block[n : n + 1])
    assert len(factory.events) == 1
    assert factory.events[0]["Interface"] == "Local/104@agents"


async def test_a_message_that_never_ends_aborts_the_connection() -> None:
    factory = Factory()
    proto, transport = protocol(factory)
    chunk = b"Event: Flood\r\nData: " + b"x" * 65536
    proto.data_received(chunk)
    while not transport.aborted:
        proto.data_received(b"x" * 65536)
        await settle(proto)
    assert "longer than" in factory.lost
    assert len(proto._partial) == 0
    assert MAX_MESSAGE_BYTES < 2 * 1024 * 1024
