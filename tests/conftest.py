"""Shared fixtures: a real router (SQLite file, TCP FastAGI server) and a fake Asterisk."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.app import Application
from fastagi_router.config import AGISettings, PromptSettings, Settings
from fastagi_router.simulator import Asterisk


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Settings for a test: a store in ``tmp_path``, an ephemeral port, and ``changes``.

    Sections (``agi``, ``prompt``, ``ami``, ...) take dicts of the fields to change in them.
    """
    agi = dataclasses.replace(AGISettings(listen="127.0.0.1:0"), **changes.pop("agi", {}))
    prompt = dataclasses.replace(PromptSettings(), **changes.pop("prompt", {}))
    for section in dataclasses.fields(Settings):
        if isinstance(changes.get(section.name), dict):
            default = section.default_factory()  # type: ignore[misc]
            changes[section.name] = dataclasses.replace(default, **changes[section.name])
    return Settings(db=str(tmp_path / "router.db"), agi=agi, prompt=prompt, **changes)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    return lambda **changes: make_settings(tmp_path, **changes)


class Router:
    """A started `Application` and an `Asterisk` pointed at it."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.asterisk = Asterisk(port=app.agi.port)
        self.store = app.store

    @property
    def metrics(self) -> Any:
        return self.app.metrics


@pytest.fixture
async def start_router(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Return ``await start(**settings_changes, sources=...)`` -> `Router`; all stopped after."""
    started: list[Application] = []

    async def start(sources: Any = (), store: Any = None, **changes: Any) -> Router:
        app = await Application.start(
            make_settings(tmp_path, **changes), sources=sources, store=store
        )
        started.append(app)
        return Router(app)

    yield start
    for app in started:
        await app.stop(grace=1.0)
