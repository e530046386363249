"""The supervised Manager connection over TCP, against the fake Manager: login, replayed
calls, link drops, Asterisk restarts, wrong secrets, silent links, malformed input."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.ami import ManagerLearning, ManagerListener, ManagerState
from fastagi_router.ami.listener import MAX_MESSAGE_BYTES, Backoff, _Manager
from fastagi_router.config import AMISettings
from fastagi_router.metrics import Metrics
from fastagi_router.simulator import CallSpec
from fastagi_router.store import SQLiteStore
from tests.ami.support import Delays, eventually, learning_for
from tests.fakes.ami import DIRECT_DIAL, QUEUE_CALL, load, with_variable

QUEUE = load(QUEUE_CALL)
DIAL = load(DIRECT_DIAL)
KEY = "+84899990988"


async def connected(learning: ManagerLearning, logins: int = 1) -> None:
    await eventually(
        lambda: (
            learning.status.state is ManagerState.CONNECTED and learning.status.logins >= logins
        ),
        f"login #{logins}",
    )


async def delivered(learning: ManagerLearning, events: int) -> None:
    """Wait until ``events`` events (FullyBooted included) were handed over, then until
    what they taught is written."""
    await eventually(
        lambda: learning.metrics.value("ami_events_total") >= events, f"{events} events"
    )
    await learning.writer.drain()


async def started(learning: ManagerLearning) -> ManagerLearning:
    learning.start()
    return learning


@pytest.fixture
async def running() -> Any:
    """Collects started `ManagerLearning`s and stops them after the test."""
    items: list[ManagerLearning] = []
    yield items
    for learning in items:
        await learning.stop()


async def test_logs_in_asking_only_for_the_events_it_reads(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port)
    running.append(await started(learning))
    await connected(learning)
    assert fake.logins == [("router", True, "call,agent")]
    assert learning.status.version == "12.0.0"
    assert learning.metrics.value("ami_connection_state", state="connected") == 1
    assert learning.metrics.value("ami_logins_total", outcome="ok") == 1
    # FullyBooted comes with every login; SuccessfulAuth (class security) is filtered out.
    await eventually(lambda: learning.metrics.value("ami_events_total") == 1, "FullyBooted")


async def test_replayed_queue_call_is_learned(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port)
    running.append(await started(learning))
    await connected(learning)
    blocks = [with_variable(b, "SR_ACCOUNT", "CL0000") for b in QUEUE.events]
    sent = await fake.send(blocks)
    assert 0 < sent < len(blocks)  # dialplan-class events (Newexten, VarSet) are filtered
    await delivered(learning, 1 + sent)
    route = await store.get_route("CL0000", number_key=KEY)
    assert route is not None
    assert (route.agent, route.origin, route.phone_number) == ("104", "learned", "0899990988")
    assert learning.metrics.value("learned_total", outcome="created") == 1


async def test_replayed_direct_dial_is_learned_in_default(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager(recording=DIAL)
    learning = learning_for(tmp_path, store, fake.port)
    running.append(await started(learning))
    await connected(learning)
    sent = await fake.send(DIAL.events, chunk=13)  # arbitrary TCP segmentation
    await delivered(learning, 1 + sent)
    route = await store.get_route("default", number_key="+84899990977")
    assert route is not None and route.agent == "104"


async def test_agent_who_talks_less_than_the_minimum_teaches_nothing(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port, learning={"min_talk_seconds": 10})
    running.append(await started(learning))
    await connected(learning)
    await delivered(learning, 1 + await fake.send(QUEUE.events))
    assert await store.get_route("default", number_key=KEY) is None
    assert learning.metrics.value("learning_skipped_total", reason="short_call") == 1


async def test_event_for_an_unknown_queue_teaches_nothing(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port, learning={"queues": ("sales",)})
    running.append(await started(learning))
    await connected(learning)
    await delivered(learning, 1 + await fake.send(QUEUE.events))
    assert await store.get_route("default", number_key=KEY) is None
    assert learning.metrics.value("learning_skipped_total", reason="queue_not_learned") == 1


async def test_manual_entry_is_kept_when_another_agent_answers(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    manual = await store.set_route("default", "0899990988", KEY, "101")
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port)
    running.append(await started(learning))
    await connected(learning)
    await delivered(learning, 1 + await fake.send(QUEUE.events))
    assert await store.get_route("default", number_key=KEY) == manual
    assert learning.metrics.value("learned_total", outcome="pinned") == 1


async def test_link_drops_mid_call_and_the_end_of_the_call_still_teaches(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    delays = Delays()
    learning = learning_for(
        tmp_path, store, fake.port, delays=delays, learning={"min_talk_seconds": 2}
    )
    running.append(await started(learning))
    await connected(learning)
    cut = QUEUE.index("AgentComplete")
    first = await fake.send(QUEUE.events[:cut])
    await delivered(learning, 1 + first)
    await fake.drop()
    await connected(learning, logins=2)
    assert learning.metrics.value("ami_disconnects_total", cause="lost") == 1
    assert delays.asked == [0.5]
    assert await store.get_route("default", number_key=KEY) is None
    rest = await fake.send(QUEUE.events[cut:])
    await delivered(learning, 2 + first + rest)
    route = await store.get_route("default", number_key=KEY)
    assert route is not None and route.agent == "104"


async def test_asterisk_restart_backs_off_then_reconnects(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager(recording=DIAL)
    delays = Delays()
    learning = learning_for(
        tmp_path,
        store,
        fake.port,
        delays=delays,
        ami={"ping_interval_ms": 20, "backoff_initial_ms": 500, "backoff_max_ms": 3000},
    )
    running.append(await started(learning))
    await connected(learning)
    await fake.stop()  # Asterisk goes down: connections closed, port refused
    await eventually(lambda: len(delays.asked) >= 5, "five refused reconnections")
    assert learning.status.state is ManagerState.DISCONNECTED
    assert "cannot connect" in learning.status.error
    assert delays.asked[:5] == [0.5, 1.0, 2.0, 3.0, 3.0]  # doubling, capped at the maximum
    assert learning.metrics.value("ami_connection_state", state="connected") == 0
    await fake.start()  # back on the same port
    await connected(learning, logins=2)
    await delivered(learning, 2 + await fake.send(DIAL.events))
    assert await store.get_route("default", number_key="+84899990977") is not None
    # Once the new connection answered a Ping, the next failure starts from the beginning.
    # Pings go one at a time: a second one on this connection means the first was answered.
    pings = fake.pings
    await eventually(lambda: fake.pings >= pings + 2, "pings answered on the new connection")
    asked = len(delays.asked)
    await fake.drop()
    await eventually(lambda: len(delays.asked) > asked, "a reconnection")
    assert delays.asked[asked] == 0.5


async def test_wrong_secret_is_reported_and_retried_slowly(
    fake_manager: Any,
    store: SQLiteStore,
    tmp_path: Path,
    running: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = await fake_manager(secret="the-right-one")
    delays = Delays()
    learning = learning_for(tmp_path, store, fake.port, delays=delays)
    caplog.set_level(logging.ERROR, "fastagi_router.ami")
    running.append(await started(learning))
    await eventually(lambda: len(delays.asked) >= 2, "two refused logins")
    assert learning.status.state is ManagerState.AUTH_FAILED
    assert learning.status.error == "Authentication failed"
    assert learning.metrics.value("ami_connection_state", state="auth_failed") == 1
    assert learning.metrics.value("ami_logins_total", outcome="refused") >= 2
    assert set(delays.asked) == {60.0}  # the longest delay, never the short ones
    assert all(not ok for _, ok, _ in fake.logins)
    assert any("refused the login of 'router'" in r.getMessage() for r in caplog.records)
    assert "s3cret" not in caplog.text
    fake.secret = "s3cret"  # manager.conf fixed and reloaded: no restart needed
    await connected(learning)
    assert learning.metrics.value("ami_connection_state", state="auth_failed") == 0


async def test_link_that_stops_answering_pings_is_reopened(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(
        tmp_path, store, fake.port, ami={"ping_interval_ms": 20, "ping_timeout_ms": 100}
    )
    running.append(await started(learning))
    await connected(learning)
    await eventually(lambda: fake.pings >= 2, "answered pings")
    assert fake.connections == 1
    fake.answer_pings = False  # the socket stays open, nothing comes back
    await eventually(
        lambda: learning.metrics.value("ami_disconnects_total", cause="ping_timeout") >= 1,
        "the dead link to be noticed",
    )
    assert "no answer to Ping" in learning.status.error
    fake.answer_pings = True
    await connected(learning, logins=2)
    assert fake.connections >= 2


async def test_malformed_messages_are_skipped_and_the_stream_goes_on(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port)
    running.append(await started(learning))
    await connected(learning)
    await fake.send_raw(
        b"garbage without any structure\r\n\r\n"
        b"\xff\xfe\x00\x01 binary\r\n\r\n"
        b"\r\n\r\n"
        b"Event: AgentConnect\r\nPrivilege: agent,all\r\nno colon here\r\nQueue: support\r\n\r\n"
        b"Event: DialEnd\r\nPrivilege: call,all\r\nDialStatus: ANSWER\r\nChannel: x\r\n\r\n",
        chunk=5,
    )
    sent = await fake.send(QUEUE.events, chunk=7)
    await delivered(learning, 1 + 2 + sent)
    route = await store.get_route("default", number_key=KEY)
    assert route is not None and route.agent == "104"
    assert fake.connections == 1
    assert learning.status.state is ManagerState.CONNECTED


async def test_a_character_split_across_reads_arrives_whole(
    fake_manager: Any, tmp_path: Path
) -> None:
    fake = await fake_manager()
    events: list[Any] = []
    settings = AMISettings(host="127.0.0.1", port=fake.port, username="router", secret="s3cret")
    listener = ManagerListener(settings, events.append, Metrics())
    listener.start()
    try:
        await eventually(lambda: listener.status.state is ManagerState.CONNECTED, "login")
        name = "Nguyễn Thị Ánh".encode()
        block = b"Event: Newchannel\r\nPrivilege: call,all\r\nCallerIDName: " + name + b"\r\n\r\n"
        split = block.index(name) + 5  # inside the two bytes of 'ễ'... or close to it
        await fake.send_raw(block[:split])
        await asyncio.sleep(0.02)
        await fake.send_raw(block[split:])
        await eventually(lambda: len(events) >= 2, "the event")
        assert events[-1]["CallerIDName"] == "Nguyễn Thị Ánh"
    finally:
        await listener.stop()


async def test_a_message_without_end_is_cut_off(
    fake_manager: Any, store: SQLiteStore, tmp_path: Path, running: list[Any]
) -> None:
    fake = await fake_manager()
    learning = learning_for(tmp_path, store, fake.port)
    running.append(await started(learning))
    await connected(learning)
    await fake.send_raw(b"Event: Flood\r\nData: " + b"x" * (MAX_MESSAGE_BYTES + 10))
    await connected(learning, logins=2)
    assert fake.connections == 2
    assert learning.metrics.value("ami_disconnects_total", cause="lost") == 1


async def test_a_handler_that_fails_does_not_end_the_connection(
    fake_manager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await fake_manager()
    seen: list[str] = []

    def handler(event: Any) -> None:
        seen.append(event["Event"])
        if event["Event"] == "AgentConnect":
            raise RuntimeError("bug")

    settings = AMISettings(host="127.0.0.1", port=fake.port, username="router", secret="s3cret")
    listener = ManagerListener(settings, handler, Metrics())
    listener.start()
    try:
        await eventually(lambda: listener.status.state is ManagerState.CONNECTED, "login")
        await fake.send(QUEUE.events)
        await eventually(
            lambda: "AgentConnect" in seen and "AgentComplete" in seen,
            "events after the failure",
        )
        assert listener.status.state is ManagerState.CONNECTED
        assert "failed to handle AgentConnect" in caplog.text
    finally:
        await listener.stop()


async def test_stop_while_reconnecting_is_clean(store: SQLiteStore, tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    delays = Delays()
    learning = learning_for(tmp_path, store, port, delays=delays)
    learning.start()
    await eventually(lambda: len(delays.asked) >= 2, "refused connections")
    await learning.stop()
    assert learning.status.state is ManagerState.STOPPED
    assert learning.metrics.value("ami_connection_state", state="connected") == 0


def test_backoff_doubles_up_to_the_maximum_with_jitter() -> None:
    high = Backoff(0.5, 10.0, lambda: 1.0)
    assert [high.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    low = Backoff(0.5, 10.0, lambda: 0.0)
    assert [low.next() for _ in range(3)] == [0.25, 0.5, 1.0]  # never under half
    high.reset()
    assert high.next() == 0.5
    assert Backoff(0.5, 10.0, lambda: 0.5).longest() == 7.5
    endless = Backoff(1.0, 60.0, lambda: 1.0)
    assert [endless.next() for _ in range(200)][-1] == 60.0  # no overflow after many failures


async def test_learned_entry_routes_the_next_call_end_to_end(
    fake_manager: Any, start_router: Any
) -> None:
    fake = await fake_manager()
    router = await start_router(
        ami={
            "host": "127.0.0.1",
            "port": fake.port,
            "username": "router",
            "secret": "s3cret",
            "backoff_initial_ms": 10,
        }
    )
    learning = router.app.learning
    assert learning is not None
    await connected(learning)
    blocks = [with_variable(b, "SR_ACCOUNT", "CL0000") for b in QUEUE.events]
    await delivered(learning, 1 + await fake.send(blocks))
    result = await router.asterisk.call(
        CallSpec(callerid="0899990988", script="route?account=CL0000", port=router.app.agi.port)
    )
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
    assert result.variables["SMARTROUTING_AGENT"] == "104"


async def test_calls_are_answered_while_the_manager_is_unreachable(start_router: Any) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    router = await start_router(
        ami={"host": "127.0.0.1", "port": port, "username": "router", "secret": "s3cret"}
    )
    await router.store.set_route("default", "0899990988", KEY, "104")
    async with asyncio.timeout(5):
        result = await router.asterisk.call(CallSpec(port=router.app.agi.port))
    assert result.round_trips == 1
    assert result.variables["SMARTROUTING_AGENT"] == "104"
    assert router.app.learning.status.state is not ManagerState.CONNECTED


async def test_a_manager_that_never_answers_holds_up_nothing(
    fake_manager: Any, start_router: Any
) -> None:
    fake = await fake_manager()
    fake.silent = True
    router = await start_router(
        ami={
            "host": "127.0.0.1",
            "port": fake.port,
            "username": "router",
            "secret": "s3cret",
            "connect_timeout_ms": 200,
            "backoff_initial_ms": 10,
        }
    )
    await router.store.set_route("default", "0899990988", KEY, "104")
    await eventually(lambda: fake.connections >= 1 and fake.sessions, "the connection")
    async with asyncio.timeout(5):
        result = await router.asterisk.call(CallSpec(port=router.app.agi.port))
    assert result.variables["SMARTROUTING_STATUS"] == "AGENT"
    learning = router.app.learning
    await eventually(
        lambda: learning.metrics.value("ami_disconnects_total", cause="login_timeout") >= 1,
        "the login to time out",
    )
    assert learning.status.error == "no answer to Login within 0.2 s; dropping the link"
    assert {action["Action"] for action in fake.actions} == {"Login"}


async def test_an_unexpected_error_is_logged_and_the_listener_carries_on(
    fake_manager: Any,
    store: SQLiteStore,
    tmp_path: Path,
    running: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = await fake_manager()
    real_connect = _Manager.connect
    calls = 0

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the library")
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(_Manager, "connect", connect)
    delays = Delays()
    learning = learning_for(tmp_path, store, fake.port, delays=delays)
    running.append(await started(learning))
    await connected(learning)
    assert delays.asked == [0.5]
    assert learning.metrics.value("ami_disconnects_total", cause="error") == 1
    assert "unexpected error" in caplog.text and "a bug in the library" in caplog.text
