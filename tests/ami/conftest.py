"""Fixtures for the Manager tests: the fake Manager server and a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.store import SQLiteStore
from tests.fakes.ami import FakeManager


@pytest.fixture
async def fake_manager() -> AsyncIterator[Callable[..., Awaitable[FakeManager]]]:
    """Return ``await start(**options)`` -> a listening `FakeManager`; all stopped after."""
    started: list[FakeManager] = []

    async def start(**options: Any) -> FakeManager:
        fake = FakeManager(**options)
        await fake.start(0)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        await fake.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = await SQLiteStore.open(str(tmp_path / "learned.db"))
    yield s
    await s.close()
