"""The affinity window end to end: a learned entry not seen for ``learning.affinity_days``
no longer routes; a manual entry always does; the window costs no round trip."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from fastagi_router.simulator import CallSpec, Keypress

KEY = "+84899990988"


def age(db_path: str, days: float) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - days * 86400))
    db = sqlite3.connect(db_path)
    with db:
        db.execute("UPDATE routes SET last_seen_at = ? WHERE number_key = ?", (stamp, KEY))
    db.close()


async def _call(router: Any) -> Any:
    spec = CallSpec(callerid="0899990988", port=router.app.agi.port)
    return await router.asterisk.call(spec, [Keypress("")])


async def test_learned_entry_routes_inside_the_window_only(start_router: Any) -> None:
    router = await start_router(prompt={"attempts": 1})
    await router.store.learn_route("default", "0899990988", KEY, "104")
    age(router.app.settings.db, 29)
    inside = await _call(router)
    assert inside.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert inside.round_trips == 1
    age(router.app.settings.db, 31)
    outside = await _call(router)
    assert outside.variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    assert outside.variables["SMARTROUTING_AGENT"] == ""


async def test_window_is_configurable_and_zero_means_none(start_router: Any) -> None:
    week = await start_router(prompt={"attempts": 0}, learning={"affinity_days": 7})
    await week.store.learn_route("default", "0899990988", KEY, "104")
    age(week.app.settings.db, 8)
    assert (await _call(week)).variables["SMARTROUTING_STATUS"] == "UNKNOWN"
    forever = await start_router(prompt={"attempts": 0}, learning={"affinity_days": 0})
    assert (await _call(forever)).variables["SMARTROUTING_AGENT"] == "104"


async def test_manual_entry_has_no_window(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", KEY, "101")
    age(router.app.settings.db, 400)
    result = await _call(router)
    assert result.variables["SMARTROUTING_AGENT"] == "101"
