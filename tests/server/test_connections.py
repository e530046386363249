"""Connections that are not well-behaved calls: each ends quietly and in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastagi_router.simulator import CallSpec, Faults, Keypress, header_block


async def _raw(
    port: int, data: bytes, *, close_write: bool = False, wait: float = 3.0
) -> tuple[bytes, float]:
    """Send ``data``, then read until the server closes; return what came and how long."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if close_write:
        writer.write_eof()
    received = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()
    return received, time.monotonic() - start


async def test_health_check_connect_and_close(start_router: Any) -> None:
    router = await start_router()
    for _ in range(20):
        received, _ = await _raw(router.app.agi.port, b"", close_write=True)
        assert received == b""
    await asyncio.sleep(0.05)
    assert router.app.agi.active == 0
    result = await router.asterisk.call(
        CallSpec(port=router.app.agi.port, callerid="anonymous"), [Keypress("")] * 3
    )
    assert result.status == "UNKNOWN"


async def test_silent_client_is_closed_after_the_header_timeout(start_router: Any) -> None:
    router = await start_router(agi={"header_timeout_ms": 200})
    received, elapsed = await _raw(router.app.agi.port, b"agi_network: yes\n")
    assert received == b""
    assert 0.15 < elapsed < 2.0
    assert router.metrics.value("sessions_total", outcome="header_timeout") == 1


async def test_close_in_the_middle_of_the_header_block(start_router: Any) -> None:
    router = await start_router()
    block = header_block(CallSpec())
    for cut in (1, 17, len(block) // 2, len(block) - 1):
        received, elapsed = await _raw(router.app.agi.port, block[:cut], close_write=True)
        assert received == b""
        assert elapsed < 1.0
    await asyncio.sleep(0.05)
    assert router.app.agi.active == 0


async def test_header_block_in_tiny_pieces(start_router: Any) -> None:
    router = await start_router()
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    result = await router.asterisk.call(
        CallSpec(port=router.app.agi.port), faults=Faults(chunk_size=7, chunk_delay=0.001)
    )
    assert result.status == "AGENT"


async def test_binary_garbage_ends_quietly(start_router: Any) -> None:
    router = await start_router()
    received, elapsed = await _raw(router.app.agi.port, bytes(range(256)) * 4)
    assert received == b""
    assert elapsed < 1.0
    assert router.metrics.value("protocol_errors_total") == 1


async def test_endless_header_line_is_cut(start_router: Any) -> None:
    router = await start_router()
    _, elapsed = await _raw(router.app.agi.port, b"agi_network: " + b"x" * 200_000, wait=5)
    assert elapsed < 2.0
    assert router.metrics.value("protocol_errors_total") == 1


async def test_refused_peer_is_closed_at_once(start_router: Any) -> None:
    router = await start_router(agi={"allow": ("10.0.0.0/8",)})
    received, elapsed = await _raw(router.app.agi.port, header_block(CallSpec()))
    assert received == b""
    assert elapsed < 1.0
    assert router.metrics.value("sessions_refused_total", reason="allowlist") == 1


async def test_allowlist_admits_loopback_by_default(start_router: Any) -> None:
    router = await start_router()
    assert router.app.agi.allowed("127.0.0.1")
    assert router.app.agi.allowed("::1")
    assert router.app.agi.allowed("::ffff:127.0.0.1")
    assert not router.app.agi.allowed("192.0.2.1")
    assert not router.app.agi.allowed("not-an-address")


async def test_unsolicited_reply_is_a_protocol_error(start_router: Any) -> None:
    router = await start_router()
    data = header_block(CallSpec(callerid="anonymous")) + b"200 result=0\n"
    received, elapsed = await _raw(router.app.agi.port, data, wait=3)
    assert elapsed < 2.0
    assert router.metrics.value("protocol_errors_total") == 1
    assert b"SMARTROUTING_STATUS" not in received


async def test_asterisk_closing_mid_command_ends_quietly(start_router: Any) -> None:
    router = await start_router()
    result = await router.asterisk.call(
        CallSpec(port=router.app.agi.port, callerid="anonymous"), faults=Faults(close_at=1)
    )
    assert result.closed_by == "asterisk"
    await asyncio.sleep(0.05)
    assert router.app.agi.active == 0
    assert router.metrics.value("sessions_total", outcome="hangup") == 1


async def test_stop_lets_calls_in_progress_finish(start_router: Any) -> None:
    router = await start_router()
    port = router.app.agi.port
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    call = asyncio.create_task(
        router.asterisk.call(CallSpec(port=port), faults=Faults(reply_delay=0.3))
    )
    await asyncio.sleep(0.1)
    await router.app.agi.stop(grace=2.0)
    result = await call
    assert result.status == "AGENT"
    refused = await router.asterisk.call(CallSpec(port=port), timeout=2)
    assert refused.closed_by == "refused"


async def test_fast_answer_without_reply_is_closed_in_bounded_time(start_router: Any) -> None:
    router = await start_router(agi={"reply_grace_ms": 100})
    await router.store.set_route("default", "0899990988", "+84899990988", "104")
    call = asyncio.create_task(
        router.asterisk.call(
            CallSpec(port=router.app.agi.port), faults=Faults(reply_delay=3.0), timeout=10
        )
    )
    for _ in range(150):  # the router gives up after 0.2 s; the reply would come after 3 s
        if router.metrics.value("sessions_total", outcome="no_reply"):
            break
        await asyncio.sleep(0.01)
    assert router.metrics.value("sessions_total", outcome="no_reply") == 1
    assert not call.done()
    assert not router.app.agi.watched
    result = await call
    assert result.commands[0].startswith("EXEC MSet")
    assert result.closed_by == "server"
