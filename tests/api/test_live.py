"""The REST API inside the running router: the same store as FastAGI, so a change made over
HTTP applies to the very next call; start-up and shut-down together."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from fastagi_router.app import Application
from fastagi_router.simulator import CallSpec
from tests.conftest import make_settings


async def call(router: Any, callerid: str = "0899990988", script: str = "route") -> Any:
    result = await router.asterisk.call(
        CallSpec(callerid=callerid, script=script, port=router.app.agi.port)
    )
    return result.variables


async def test_a_route_changed_over_http_applies_to_the_next_call(live: Any) -> None:
    router, api = live
    assert (await call(router))["SMARTROUTING_STATUS"] == "UNKNOWN"

    reply = await api.post("/v1/smartrouting", json={"phone_number": "0899990988", "agent": "104"})
    assert reply.status == 200
    variables = await call(router, "+84899990988")
    assert (variables["SMARTROUTING_STATUS"], variables["SMARTROUTING_AGENT"]) == ("AGENT", "104")

    await api.post("/v1/smartrouting", json={"phone_number": "84899990988", "agent": "105"})
    assert (await call(router))["SMARTROUTING_AGENT"] == "105"

    assert (await api.delete("/v1/smartrouting/%2B84899990988")).status == 200
    assert (await call(router))["SMARTROUTING_STATUS"] == "UNKNOWN"


async def test_a_customer_changed_over_http_applies_to_the_next_call(live: Any) -> None:
    router, api = live
    body = {"phone_numbers": ["0899990988"], "destination1": "207", "vip": True}
    assert (await api.put("/v1/customers/C1", json=body)).status == 200
    variables = await call(router)
    assert variables["SMARTROUTING_STATUS"] == "CUSTOMER"
    assert (variables["SMARTROUTING_DEST1"], variables["SMARTROUTING_VIP"]) == ("207", "1")
    lookup = await api.get(
        "/api/v1/smartRoutings", params={"customerAccount": "default", "number": "0899990988"}
    )
    assert lookup.json["destination1"] == variables["SMARTROUTING_DEST1"]
    assert (await api.delete("/v1/customers/C1")).status == 200
    assert (await call(router))["SMARTROUTING_STATUS"] == "UNKNOWN"


async def test_metrics_count_calls_and_requests_without_numbers_or_accounts(live: Any) -> None:
    router, api = live
    await call(router, "+33142685300", "route?account=CL0000")
    await api.get("/v1/smartrouting/0899990988", params={"account": "CL0000"})
    text = (await api.get("/metrics", token=None)).text
    lines = text.splitlines()
    assert (
        'fastagi_router_calls_total{reason="no_code",source="none",status="UNKNOWN"} 1.0' in lines
    )
    assert (
        'fastagi_router_http_requests_total{method="GET",route="/v1/smartrouting/{key}",'
        'status="404"} 1.0'
    ) in lines
    for private in ("CL0000", "33142685300", "899990988", "test-admin"):
        assert private not in text


async def test_http_can_be_turned_off(start_router: Any) -> None:
    router = await start_router(http={"enabled": False})
    assert router.app.http is None and router.http_url is None
    assert (await call(router))["SMARTROUTING_STATUS"] in ("UNKNOWN", "FALLBACK")


async def test_a_busy_http_port_stops_start_up_cleanly(tmp_path: Any) -> None:
    agi = socket.socket()
    agi.bind(("127.0.0.1", 0))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(tmp_path, http={"listen": f"127.0.0.1:{port}"})
        with pytest.raises(OSError):
            await Application.start(settings, agi_socket=agi)
    # The FastAGI listener that had started is closed again; the store can be opened anew.
    assert agi.fileno() == -1
    app = await Application.start(make_settings(tmp_path))
    try:
        assert app.http is not None and app.http.port > 0
    finally:
        await app.stop(grace=1.0)


async def test_stop_closes_the_http_port(start_router: Any) -> None:
    router = await start_router()
    port = router.app.http.port
    await router.app.stop(grace=1.0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
