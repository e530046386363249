"""Sources learn which call they answer for: its id, the number dialled and its budget."""

from __future__ import annotations

import asyncio
from typing import Any

from fastagi_router.phone import CallerNumber
from fastagi_router.routing import CallContext, Found
from fastagi_router.server.session import Deadline
from fastagi_router.simulator import CallSpec, Keypress


class RecordingSource:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, float | None]] = []

    async def by_number(
        self, account: str, number: CallerNumber, *, call: CallContext | None = None
    ) -> Found | None:
        assert call is not None
        self.seen.append(("number", call.uniqueid, call.extension, call.remaining()))
        return None

    async def by_code(
        self, account: str, code: str, *, call: CallContext | None = None
    ) -> Found | None:
        assert call is not None
        self.seen.append(("code", call.uniqueid, call.extension, call.remaining()))
        return None


async def test_router_passes_the_call_to_its_sources(start_router: Any) -> None:
    source = RecordingSource()
    router = await start_router(sources=[source], deadline_ms=5000, prompt={"attempts": 1})
    spec = CallSpec(
        callerid="0911111111",
        extension="0287654321",
        uniqueid="1700000000.7",
        port=router.app.agi.port,
    )
    await router.asterisk.call(spec, [Keypress("4242")])
    assert [s[:3] for s in source.seen] == [
        ("number", "1700000000.7", "0287654321"),
        ("code", "1700000000.7", "0287654321"),
    ]
    for *_, remaining in source.seen:
        assert remaining is not None
        assert 0 < remaining <= 5.0


async def test_deadline_remaining_is_frozen_while_paused() -> None:
    deadline = Deadline(10.0)
    assert deadline.remaining() is None
    async with deadline:
        left = deadline.remaining()
        assert left is not None and 0 < left <= 10.0
        deadline.pause()
        frozen = deadline.remaining()
        await asyncio.sleep(0.02)
        assert deadline.remaining() == frozen
        deadline.resume()
        resumed = deadline.remaining()
        assert resumed is not None and resumed <= frozen
