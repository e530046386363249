"""`LiveRouter`: the whole router served from a thread of its own, for synchronous clients.

Tools such as schemathesis speak HTTP with blocking clients (requests), which would stall
an event loop shared with the server. `LiveRouter` runs a real `Application` (SQLite file,
FastAGI and REST API on 127.0.0.1 port 0) on an event loop in a background thread, so a
test thread can call it like any remote server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from fastagi_router.app import Application
from tests.conftest import make_settings

T = TypeVar("T")


class LiveRouter:
    """A started `Application` in a thread. Use as a context manager."""

    def __init__(self, tmp_path: Path, **changes: Any) -> None:
        self._settings = make_settings(tmp_path, **changes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-router")
        self.app: Application | None = None

    def __enter__(self) -> LiveRouter:
        self._thread.start()
        try:
            self.app = self.run(Application.start(self._settings))
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.app is not None:
                self.run(self.app.stop(grace=1.0))
        finally:
            self._stop_loop()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the server's loop; return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def url(self) -> str:
        """The REST API's base URL."""
        assert self.app is not None and self.app.http is not None
        return f"http://127.0.0.1:{self.app.http.port}"

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
