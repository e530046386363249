"""The upstream API failing every way it can, end to end: simulated Asterisk -> router over
TCP -> the API over TCP (`tests.fakes.upstream_modes`).

For each mode, calls from callers the local store does not know (so the API is asked)
run at once, with the product's default timings (``deadline_ms`` 2000, ``upstream.
timeout_ms`` 1000). Every call must end with a status and the mode's reason, within its
deadline (plus a margin for the test machine), and a caller known to the local store,
calling meanwhile, must be answered as if nothing were wrong. bench/upstream_faults.py
measures the same modes with many calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastagi_router.config import UpstreamSettings
from fastagi_router.model import Customer
from fastagi_router.simulator import CallSpec
from tests.fakes.upstream_modes import ACCOUNT, MODES, FaultMode, number

DEADLINE_MS = 2000
#: The product promises the deadline; the margin covers a loaded test machine only.
MARGIN_S = 0.75
CALLS = 6
LOCAL = "0298765432"


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
async def test_every_call_ends_in_time_with_a_status(start_router: Any, mode: FaultMode) -> None:
    async with mode.serve(CALLS) as url:
        router = await start_router(
            default_region="FR",
            deadline_ms=DEADLINE_MS,
            prompt={"attempts": 0},
            upstream=UpstreamSettings(url=url, token="t0k3n"),
        )
        await router.store.import_customers(
            [Customer(ACCOUNT, "LOCAL", phone_numbers=("+33298765432",), destinations=("l",) * 4)]
        )

        def call(callerid: str) -> Any:
            spec = CallSpec(callerid=callerid, script=f"route?account={ACCOUNT}")
            return router.asterisk.call(spec, timeout=DEADLINE_MS / 1000 + 10)

        remote = [asyncio.create_task(call(number(n))) for n in range(CALLS)]
        await asyncio.sleep(0.05)  # the remote calls are waiting on the API now
        local = await call(LOCAL)
        results = await asyncio.gather(*remote)

    assert local.status == "CUSTOMER" and local.variables["SMARTROUTING_SOURCE"] == "local"
    assert local.round_trips == 1 and local.elapsed < 0.5, local.elapsed
    reasons = [r.variables.get("SMARTROUTING_REASON") for r in results]
    for result in results:
        assert result.closed_by == "server" and not result.reset, result.transcript
        assert result.status in ("CUSTOMER", "FALLBACK"), result.variables
        assert result.elapsed < DEADLINE_MS / 1000 + MARGIN_S, (mode.name, result.elapsed)
    assert set(reasons) <= mode.reasons, (mode.name, reasons)
    assert mode.expected in reasons, (mode.name, reasons)
    if mode.expected:
        assert {r.status for r in results} == {"FALLBACK"}
    else:
        good = [r for r in results if r.variables["SMARTROUTING_SOURCE"] == "api"]
        assert good and all(r.variables["SMARTROUTING_DEST1"] == "api" for r in good)
