"""Learned routes on a real SQLite file: what learning may change, and the affinity window."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from fastagi_router.store import SQLiteStore

KEY = "+84899990988"
DAY = 86400.0


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = await SQLiteStore.open(str(tmp_path / "r.db"))
    yield s
    await s.close()


def age(store: SQLiteStore, account: str, key: str, days: float) -> None:
    """Set the entry's last-seen time ``days`` ago, through a second connection."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - days * DAY))
    db = sqlite3.connect(store.path)
    with db:
        db.execute(
            "UPDATE routes SET last_seen_at = ? WHERE account = ? AND number_key = ?",
            (stamp, account, key),
        )
    db.close()


async def test_first_fact_creates_a_learned_entry(store: SQLiteStore) -> None:
    result = await store.learn_route("default", "0899990988", KEY, "104")
    assert result.outcome == "created"
    route = result.route
    assert (route.origin, route.agent, route.phone_number, route.description) == (
        "learned",
        "104",
        "0899990988",
        "104",
    )
    assert route.last_seen_at is not None and route.last_seen_at == route.updated_at


async def test_a_learned_entry_follows_the_latest_agent(store: SQLiteStore) -> None:
    first = (await store.learn_route("default", "0899990988", KEY, "104")).route
    result = await store.learn_route("default", "0899990988", KEY, "105")
    assert result.outcome == "updated"
    assert (result.route.id, result.route.agent, result.route.description) == (
        first.id,
        "105",
        "105",
    )
    again = await store.learn_route("default", "0899990988", KEY, "105")
    assert again.outcome == "refreshed"


async def test_manual_entries_are_pinned_by_default(store: SQLiteStore) -> None:
    manual = await store.set_route("default", "0899990988", KEY, "101", description="VIP desk")
    result = await store.learn_route("default", "0899990988", KEY, "104")
    assert result.outcome == "pinned"
    assert result.route == manual
    stored = await store.get_route("default", number_key=KEY)
    assert stored == manual


async def test_a_manual_entry_served_by_its_own_agent_is_seen(store: SQLiteStore) -> None:
    await store.set_route("default", "0899990988", KEY, "101")
    age(store, "default", KEY, 3)
    result = await store.learn_route("default", "0899990988", KEY, "101")
    assert result.outcome == "refreshed"
    assert result.route.origin == "manual"
    stored = await store.get_route("default", number_key=KEY)
    assert stored is not None and stored.last_seen_at == result.route.last_seen_at
    assert stored.last_seen_at is not None and stored.last_seen_at >= stored.updated_at


async def test_overwrite_manual_replaces_it_with_a_learned_entry(store: SQLiteStore) -> None:
    await store.set_route("default", "0899990988", KEY, "101", description="VIP desk")
    result = await store.learn_route("default", "0899990988", KEY, "104", overwrite_manual=True)
    assert result.outcome == "updated"
    assert (result.route.origin, result.route.agent) == ("learned", "104")
    assert result.route.description == "VIP desk"  # a note that was set is kept


async def test_learning_is_per_account(store: SQLiteStore) -> None:
    await store.set_route("CL0000", "0899990988", KEY, "101")
    result = await store.learn_route("CL0001", "0899990988", KEY, "104")
    assert result.outcome == "created"
    assert (await store.get_route("CL0000", number_key=KEY)).agent == "101"  # type: ignore[union-attr]


async def test_an_expired_learned_entry_does_not_route(store: SQLiteStore) -> None:
    await store.learn_route("default", "0899990988", KEY, "104")
    since = time.time() - 30 * DAY
    fresh = await store.lookup_number("default", KEY, learned_since=since)
    assert fresh.route is not None and fresh.route.agent == "104"
    age(store, "default", KEY, 31)
    stale = await store.lookup_number("default", KEY, learned_since=since)
    assert stale.route is None
    unbounded = await store.lookup_number("default", KEY)
    assert unbounded.route is not None  # no window: every entry counts
    await store.learn_route("default", "0899990988", KEY, "104")
    back = await store.lookup_number("default", KEY, learned_since=since)
    assert back.route is not None  # seen again: routes again


async def test_manual_entries_have_no_window(store: SQLiteStore) -> None:
    await store.set_route("default", "0899990988", KEY, "101")
    age(store, "default", KEY, 400)
    match = await store.lookup_number("default", KEY, learned_since=time.time() - 30 * DAY)
    assert match.route is not None and match.route.agent == "101"


async def test_an_expired_account_entry_lets_the_default_one_apply(store: SQLiteStore) -> None:
    await store.set_route("default", "0899990988", KEY, "100")
    await store.learn_route("CL0000", "0899990988", KEY, "104")
    since = time.time() - 30 * DAY
    match = await store.lookup_number("CL0000", KEY, learned_since=since)
    assert match.route is not None and match.route.agent == "104"
    age(store, "CL0000", KEY, 45)
    match = await store.lookup_number("CL0000", KEY, learned_since=since)
    assert match.route is not None and (match.route.account, match.route.agent) == (
        "default",
        "100",
    )
