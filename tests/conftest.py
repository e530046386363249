"""Shared fixtures: a real router (SQLite file, TCP FastAGI server) and a fake Asterisk."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.api.tokens import digest
from fastagi_router.app import Application
from fastagi_router.cli import main as cli_main
from fastagi_router.config import (
    AGISettings,
    APISettings,
    HTTPSettings,
    PromptSettings,
    Settings,
)
from fastagi_router.simulator import Asterisk

#: REST API tokens the test settings accept: every account and write; every account, read
#: only; the account CL0000 only, write.
ADMIN_TOKEN = "test-admin-token-0123456789"
READER_TOKEN = "test-reader-token-0123456789"
CL0000_TOKEN = "test-cl0000-token-0123456789"
TEST_TOKENS = (
    f"sha256:{digest(ADMIN_TOKEN)} accounts=* write name=admin",
    f"sha256:{digest(READER_TOKEN)} accounts=* read name=reader",
    f"sha256:{digest(CL0000_TOKEN)} accounts=CL0000 write name=cl0000",
)


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Settings for a test: a store in ``tmp_path``, ephemeral ports for FastAGI and the REST
    API, the `TEST_TOKENS`, and ``changes``.

    Sections (``agi``, ``prompt``, ``http``, ``api``, ``ami``, ...) take dicts of the fields
    to change in them.
    """
    agi = dataclasses.replace(AGISettings(listen="127.0.0.1:0"), **changes.pop("agi", {}))
    prompt = dataclasses.replace(PromptSettings(), **changes.pop("prompt", {}))
    http = dataclasses.replace(HTTPSettings(listen="127.0.0.1:0"), **changes.pop("http", {}))
    api = dataclasses.replace(APISettings(tokens=TEST_TOKENS), **changes.pop("api", {}))
    for section in dataclasses.fields(Settings):
        if isinstance(changes.get(section.name), dict):
            default = section.default_factory()  # type: ignore[misc]
            changes[section.name] = dataclasses.replace(default, **changes[section.name])
    return Settings(
        db=str(tmp_path / "router.db"), agi=agi, prompt=prompt, http=http, api=api, **changes
    )


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    return lambda **changes: make_settings(tmp_path, **changes)


class Router:
    """A started `Application`, an `Asterisk` pointed at it, and the REST API's base URL."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.asterisk = Asterisk(port=app.agi.port)
        self.store = app.store
        self.http_url = f"http://127.0.0.1:{app.http.port}" if app.http is not None else None

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


def run_cli(*argv: str) -> tuple[int, str]:
    """Run ``fastagi-router ARGV`` in this process: (exit code, what it printed)."""
    out = io.StringIO()
    code = cli_main(list(argv), out=out)
    return code, out.getvalue()
