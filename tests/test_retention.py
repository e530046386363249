"""The periodic purge: learned routes past the affinity window and audit entries past
retention are deleted, in the one process that runs it; manual routes stay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from fastagi_router import retention
from fastagi_router.app import Application
from fastagi_router.metrics import Metrics
from fastagi_router.retention import EXPIRY_ACTOR, Retention
from fastagi_router.store import SQLiteStore
from fastagi_router.store.base import AuditQuery
from tests.conftest import make_settings

DAY = 86400
KEY, OTHER = "+84899990988", "+84899990977"


async def test_learned_routes_and_old_entries_go_manual_routes_stay(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "r.db"))
    try:
        await store.learn_route("A", "0899990988", KEY, "104")
        await store.set_route("A", "0899990977", OTHER, "105", actor="cli:root")
        settings = make_settings(tmp_path, learning={"affinity_days": 30})
        metrics = Metrics()
        now = time.time()
        # Within the window and the retention: nothing goes.
        assert await Retention(settings, store, metrics).run_once() == (0, 0)
        # 31 days on, the learned route is past its window; the entry is not yet a year old.
        later = Retention(settings, store, metrics, clock=lambda: now + 31 * DAY)
        assert await later.run_once() == (1, 0)
        assert await store.get_route("A", number_key=KEY) is None
        assert await store.get_route("A", number_key=OTHER) is not None
        log = (await store.list_audit(AuditQuery())).items
        assert (log[0].actor, log[0].action, log[0].account) == (EXPIRY_ACTOR, "route.expire", "A")
        # Past audit.retention_days (365), the entries go; the purge is not audited.
        much_later = Retention(settings, store, metrics, clock=lambda: now + 366 * DAY)
        assert await much_later.run_once() == (0, 2)
        assert (await store.list_audit(AuditQuery())).total == 0
        lines = metrics.render().splitlines()
        assert 'fastagi_router_retention_deleted_total{kind="learned_routes"} 1.0' in lines
        assert 'fastagi_router_retention_deleted_total{kind="audit_entries"} 2.0' in lines
    finally:
        await store.close()


async def test_zero_keeps_everything(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "r.db"))
    try:
        await store.learn_route("A", "0899990988", KEY, "104")
        await store.set_route("A", "0899990977", OTHER, "105", actor="x")
        settings = make_settings(
            tmp_path, learning={"affinity_days": 0}, audit={"retention_days": 0}
        )
        far = time.time() + 3650 * DAY
        assert await Retention(settings, store, Metrics(), clock=lambda: far).run_once() == (0, 0)
        assert await store.get_route("A", number_key=KEY) is not None
    finally:
        await store.close()


async def test_the_purge_runs_by_itself_in_the_background(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "r.db"))
    try:
        await store.learn_route("A", "0899990988", KEY, "104")
        settings = make_settings(tmp_path)
        future = time.time() + 31 * DAY
        retention = Retention(
            settings, store, Metrics(), clock=lambda: future, first_run=0.01, interval=0.01
        )
        retention.start()
        for _ in range(200):
            if await store.get_route("A", number_key=KEY) is None:
                break
            await asyncio.sleep(0.01)
        await retention.stop()
        assert await store.get_route("A", number_key=KEY) is None
    finally:
        await store.close()


async def test_only_a_process_that_is_not_a_worker_purges(start_router: Any) -> None:
    """serve's workers start with purge=False (serving.serve_worker); the single process
    and the supervisor with the default."""
    router = await start_router()
    assert router.app.retention is not None

    worker = await Application.start(
        make_settings(Path(router.app.settings.db).parent, http={"enabled": False}), purge=False
    )
    try:
        assert worker.retention is None
    finally:
        await worker.stop(grace=1.0)


async def test_a_backlog_is_purged_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    store = await SQLiteStore.open(str(tmp_path / "r.db"))
    try:
        for i in range(5):
            await store.learn_route("A", f"089999098{i}", f"+8489999098{i}", "104")
            await store.set_route("B", f"089999097{i}", f"+8489999097{i}", "105", actor="x")
        later = time.time() + 31 * DAY
        settings = make_settings(tmp_path)
        purge = Retention(settings, store, Metrics(), clock=lambda: later)
        assert await purge.run_once() == (5, 0)
        assert (await store.list_routes("A", 10, 0)).total == 0
        # One entry per batch of two.
        log = (await store.list_audit(AuditQuery(action="route.expire"))).items
        assert [e.detail.split()[0] for e in log] == ["routes=1", "routes=2", "routes=2"]
        much_later = Retention(settings, store, Metrics(), clock=lambda: later + 366 * DAY)
        assert await much_later.run_once() == (0, 8)
    finally:
        await store.close()
