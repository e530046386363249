"""Helpers for the Manager tests: waiting for a condition, recording backoff delays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastagi_router.ami import ManagerLearning
from fastagi_router.metrics import Metrics
from fastagi_router.phone import NumberParser
from fastagi_router.store import Store
from tests.conftest import make_settings


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true; fail naming ``what`` after a generous ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Delays:
    """A ``sleep`` for the listener: records each delay asked for, waits only a moment."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        await asyncio.sleep(0.005)


def learning_for(
    tmp_path: Path,
    store: Store,
    port: int,
    *,
    delays: Delays | None = None,
    ami: dict[str, Any] | None = None,
    learning: dict[str, Any] | None = None,
) -> ManagerLearning:
    """A `ManagerLearning` pointed at 127.0.0.1:``port`` with the fake's credentials."""
    settings = make_settings(
        tmp_path,
        ami={
            "host": "127.0.0.1",
            "port": port,
            "username": "router",
            "secret": "s3cret",
            **(ami or {}),
        },
        learning=learning or {},
    )
    return ManagerLearning(
        settings,
        store,
        NumberParser("VN"),
        Metrics(),
        sleep=delays or Delays(),
        rand=lambda: 1.0,
    )
