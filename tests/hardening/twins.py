"""Two `AGIConnection`s fed the same bytes, one as the engine reads chunks: they must agree.

Shared by the Hypothesis machine (tests/hardening/test_agi_fuzz.py) and the long atheris
run (fuzz/agi_fuzz.py).
"""

from __future__ import annotations

from fastagi_router.agi import NEED_DATA, AGIConnection
from fastagi_router.errors import RemoteProtocolError

#: How a protocol error appears among the events.
ERROR = "error"


def engine_events(conn: AGIConnection, data: bytes, limit: int = 100_000) -> list[object]:
    """Feed ``data`` as the engine does (`AGIConnection.receive`, then `next_event` while
    bytes are buffered after an event) and return the events, `ERROR` for a protocol
    error; checks that nothing is left for `next_event` afterwards."""
    events: list[object] = []
    try:
        event: object = conn.receive(data)
    except RemoteProtocolError:
        event = ERROR
    for _ in range(limit):
        if event is NEED_DATA:
            break
        events.append(event)
        if not conn.buffered:
            break
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            event = ERROR
    else:  # pragma: no cover - the caller's test fails: a loop
        raise AssertionError("next_event() did not settle: a loop")
    assert conn.next_event() is NEED_DATA
    return events


def assert_twins_agree(conn: AGIConnection, twin: AGIConnection) -> None:
    """The same state, buffer, request and outstanding command."""
    assert twin.state is conn.state
    assert twin.buffered == conn.buffered
    assert twin.request == conn.request
    assert twin.outstanding == conn.outstanding
