"""The per-call log line, its masking, the JSON format, the levels, and flood limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastagi_router import logutil
from fastagi_router.agi import AGIConnection, AGIRequest
from fastagi_router.api.server import BAD_REQUESTS_LOGGED
from fastagi_router.config import LogSettings, Settings, load_settings
from fastagi_router.errors import ConfigError
from fastagi_router.logutil import BufferedHandler, JSONFormatter, TextFormatter
from fastagi_router.metrics import Metrics
from fastagi_router.server import AGIServer, Answer, CallLog
from fastagi_router.server.calllog import BATCH, BATCH_DELAY, BURST
from fastagi_router.simulator import CallSpec, Faults, Keypress, header_block

CALLS = "fastagi_router.calls"


def calls(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CALLS]


def request(**spec: Any) -> AGIRequest:
    conn = AGIConnection()
    conn.receive_data(header_block(CallSpec(**spec)))
    event = conn.next_event()
    assert isinstance(event, AGIRequest)
    return event


async def test_one_line_per_call_with_its_fields(
    start_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, CALLS)
    router = await start_router()
    await router.store.set_route("CL0000", "0899990988", "+84899990988", "104")
    port = router.app.agi.port
    script = "route?account=CL0000"
    await router.asterisk.call(CallSpec(script=script, uniqueid="1700000000.11", port=port))
    await router.asterisk.call(
        CallSpec(callerid="0911222333", script=script, uniqueid="1700000000.12", port=port),
        [Keypress("")] * 3,
    )
    first, second = calls(caplog)
    assert first.levelno == logging.INFO
    assert first.getMessage().startswith(
        "call 1700000000.11 account=CL0000 caller=******0988 status=AGENT source=local "
        "reason=none outcome=answered round_trips=1 decide_ms="
    )
    fields = second.call  # type: ignore[attr-defined]
    assert fields["uniqueid"] == "1700000000.12"
    assert (fields["status"], fields["reason"], fields["caller"]) == (
        "UNKNOWN",
        "no_code",
        "******2333",
    )
    assert fields["round_trips"] > 1 and fields["ms"] >= fields["decide_ms"] >= 0
    assert "0911222333" not in caplog.text and "0899990988" not in caplog.text


async def test_a_hangup_and_an_unknown_script_are_logged_too(
    start_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, CALLS)
    router = await start_router()
    port = router.app.agi.port
    await router.asterisk.call(CallSpec(script="nope", port=port))
    await router.asterisk.call(CallSpec(port=port), faults=Faults(hangup_at=1))
    unknown, hangup = calls(caplog)
    assert unknown.levelno == logging.WARNING
    assert unknown.call["reason"] == "unknown_script"  # type: ignore[attr-defined]
    assert unknown.getMessage().endswith(" script=nope")
    assert hangup.call["outcome"] == "hangup"  # type: ignore[attr-defined]
    assert hangup.call["status"] == "-"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mode", "shown"),
    [("full", "+84899990988"), ("last4", "********0988"), ("none", "-")],
)
def test_the_caller_is_masked_as_configured(mode: str, shown: str) -> None:
    assert CallLog(mode).mask("+84899990988") == shown


def test_peer_data_is_sanitised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, CALLS)
    log = CallLog("full")
    answer = Answer([], "FALLBACK", reason="bad_request", account="x\ny")
    log.call(request(callerid="12\x1b[2J34"), answer, "answered", 1, started=1.0, decided=1.0)
    (record,) = calls(caplog)
    assert "\n" not in record.getMessage() and "\x1b" not in record.getMessage()
    assert record.call["account"] == "x\\ny"  # type: ignore[attr-defined]


def test_overload_lines_are_limited_per_second(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, CALLS)
    log = CallLog()
    answer = Answer([], "FALLBACK", reason="overload")
    for _ in range(BURST + 25):
        log.call(request(), answer, "answered", 1, started=1.0, decided=1.0)
    assert len(calls(caplog)) == BURST
    log._windows["overload"] = (-5.0, BURST, 25)  # a second later
    log.call(request(), answer, "answered", 1, started=1.0, decided=1.0)
    summary = calls(caplog)[BURST]
    assert summary.getMessage() == "25 more overload line(s) left out of the log in one second"
    assert len(calls(caplog)) == BURST + 2


def test_json_lines_carry_the_call_fields() -> None:
    record = logging.LogRecord(CALLS, logging.INFO, "", 0, "call %s", ("x",), None)
    record.call = {"uniqueid": "1.2", "status": "AGENT", "ms": 0.5}
    line = json.loads(JSONFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == CALLS and line["message"] == "call x"
    assert (line["uniqueid"], line["status"], line["ms"]) == ("1.2", "AGENT", 0.5)
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_text_lines_keep_the_usual_format() -> None:
    record = logging.LogRecord("fastagi_router", logging.WARNING, "", 0, "hello %s", ("x",), None)
    assert TextFormatter().format(record).endswith(" WARNING fastagi_router: hello x")


def test_configure_sets_levels_and_replaces_itself() -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        logutil.configure(LogSettings(level="ERROR", levels={"fastagi_router.calls": "DEBUG"}))
        logutil.configure(
            LogSettings(level="WARNING", format="json", levels={"aiohttp.access": "INFO"})
        )
        ours = [h for h in root.handlers if isinstance(h, BufferedHandler)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JSONFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("aiohttp.access").level == logging.INFO
        assert logging.getLogger(CALLS).level == logging.NOTSET  # the old override is gone
    finally:
        for handler in [h for h in root.handlers if isinstance(h, BufferedHandler)]:
            root.removeHandler(handler)
            handler.close()
        logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)
        root.setLevel(before[0])
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = True


def test_buffered_lines_reach_the_file_on_close_and_warnings_at_once(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    handler = BufferedHandler(fd)
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.handle(logging.LogRecord("x", logging.INFO, "", 0, "info", (), None))
        assert path.read_text() == ""  # buffered
        handler.handle(logging.LogRecord("x", logging.WARNING, "", 0, "warn", (), None))
        assert path.read_text() == "info\nwarn\n"
        handler.handle(logging.LogRecord("x", logging.INFO, "", 0, "last", (), None))
    finally:
        handler.close()
        os.close(fd)
    assert path.read_text().endswith("last\n")


def test_log_settings_from_a_file_and_the_environment(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text('log_level = "WARNING"\n')
    assert load_settings(str(old), environ={}).log.level == "WARNING"
    new = tmp_path / "new.toml"
    new.write_text(
        '[log]\nformat = "json"\ncaller = "none"\n[log.levels]\n"aiohttp.access" = "INFO"\n'
    )
    settings = load_settings(str(new), environ={"FASTAGI_ROUTER_LOG_LEVEL": "DEBUG"})
    assert (settings.log.level, settings.log.format, settings.log.caller) == (
        "DEBUG",
        "json",
        "none",
    )
    assert settings.log.levels == {"aiohttp.access": "INFO"}
    env = {"FASTAGI_ROUTER_LOG_LEVELS": "fastagi_router.calls=WARNING,aiohttp.access=INFO"}
    assert load_settings(environ=env).log.levels["fastagi_router.calls"] == "WARNING"
    for bad in ({"format": "xml"}, {"caller": "first4"}, {"levels": {"a b": "INFO"}}):
        with pytest.raises(ConfigError):
            LogSettings(**bad)  # type: ignore[arg-type]


async def test_an_unparsable_http_request_is_one_warning_line(
    start_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    router = await start_router()
    port = router.app.http.port
    for _ in range(BAD_REQUESTS_LOGGED + 15):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n")
        assert (await reader.read(100)).startswith(b"HTTP/1.0 400")
        writer.close()
        await writer.wait_closed()
    lines = [r for r in caplog.records if r.name == "fastagi_router.api.http"]
    assert 1 <= len(lines) <= BAD_REQUESTS_LOGGED
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    assert lines[0].getMessage().startswith("unparsable HTTP request from 127.0.0.1: ")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("form", ["text", "json"])
def test_the_direct_line_is_the_line_logging_would_write(tmp_path: Path, form: str) -> None:
    """With only our handler installed the call line is written without a record; it must
    read exactly as the record would have, timestamps aside."""
    formatter = JSONFormatter() if form == "json" else TextFormatter()
    with only_our_handler(tmp_path, formatter) as (path, handler):
        calls_logger = logging.getLogger(CALLS)
        assert logutil.direct_handler(calls_logger) is handler
        answer = Answer([], "AGENT", source="local", account="CL0000")
        CallLog().call(request(), answer, "answered", 1, started=1.0, decided=1.5)
        logging.getLogger().handlers.append(logging.NullHandler())  # now the record path
        assert logutil.direct_handler(calls_logger) is None
        CallLog().call(request(), answer, "answered", 1, started=1.0, decided=1.5)
        handler.flush()
    direct, recorded = path.read_text().splitlines()
    if form == "json":
        a, b = json.loads(direct), json.loads(recorded)
        for line in (a, b):
            del line["time"], line["ms"]
            line["message"] = line["message"].rsplit(" ms=", 1)[0]
        assert a == b
    else:
        assert (
            direct.split(" ", 2)[2].rsplit(" ms=", 1)[0]
            == recorded.split(" ", 2)[2].rsplit(" ms=", 1)[0]
        )


@contextlib.contextmanager
def only_our_handler(
    tmp_path: Path, formatter: logging.Formatter | None = None
) -> Iterator[tuple[Path, BufferedHandler]]:
    """Our handler as the only one, writing lines (text unless ``formatter``) to a file;
    calls logged at INFO. (Inside the test: pytest adds its own handlers around the call,
    not the fixtures.)"""
    root = logging.getLogger()
    saved = list(root.handlers)
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    handler = BufferedHandler(fd)
    handler.setFormatter(formatter or TextFormatter())
    calls_logger = logging.getLogger(CALLS)
    level = calls_logger.level
    try:
        root.handlers = [handler]
        calls_logger.setLevel(logging.INFO)
        yield path, handler
    finally:
        root.handlers = saved
        calls_logger.setLevel(level)
        handler.close()
        os.close(fd)


def written(path: Path, handler: BufferedHandler) -> list[str]:
    handler.flush()
    return path.read_text().splitlines()


def log_calls(log: CallLog, first: int, count: int, reason: str = "none") -> None:
    answer = Answer([], "AGENT", source="local", reason=reason, account="CL0000")
    for n in range(first, first + count):
        req = request(uniqueid=f"1700000000.{n}")
        log.call(req, answer, "answered", 1, started=1.0, decided=1.0)


async def test_call_lines_are_made_in_batches_in_order(tmp_path: Path) -> None:
    with only_our_handler(tmp_path) as (path, handler):
        log = CallLog()
        log_calls(log, 0, BATCH - 1)
        assert written(path, handler) == []  # waiting for the batch
        log_calls(log, BATCH - 1, 3)
        lines = written(path, handler)
        assert [line.split(" ")[5] for line in lines] == [f"1700000000.{n}" for n in range(BATCH)]
        assert all(" INFO fastagi_router.calls: call " in line for line in lines)
        await asyncio.sleep(BATCH_DELAY * 3)  # the last two: at most BATCH_DELAY later
        later = written(path, handler)[BATCH:]
        assert [line.split(" ")[5] for line in later] == ["1700000000.64", "1700000000.65"]


async def test_a_warning_follows_the_waiting_lines_and_is_written_at_once(tmp_path: Path) -> None:
    with only_our_handler(tmp_path) as (path, _):
        log = CallLog()
        log_calls(log, 0, 3)
        log_calls(log, 3, 1, reason="overload")
        # No handler flush: a WARNING writes the buffer out itself.
        lines = path.read_text().splitlines()
        assert [line.split(" ")[2] for line in lines] == ["INFO"] * 3 + ["WARNING"]
        assert [line.split(" ")[5] for line in lines] == [f"1700000000.{n}" for n in range(4)]


async def test_the_server_writes_the_waiting_lines_on_a_reload_and_when_it_stops(
    tmp_path: Path,
) -> None:
    with only_our_handler(tmp_path) as (path, handler):
        fallback = Answer([], "FALLBACK")
        server = AGIServer(Settings(), {}, lambda request, reason: fallback, Metrics())
        log_calls(server.call_log, 0, 2)
        server.apply(Settings())
        assert len(written(path, handler)) == 2
        log_calls(server.call_log, 2, 2)
        await server.stop()
        assert len(written(path, handler)) == 4


def test_lines_still_waiting_when_the_process_exits_are_written() -> None:
    """A loop that ends without `AGIServer.stop`: the lines are not lost at exit."""
    script = """
import asyncio
from fastagi_router import logutil
from fastagi_router.config import LogSettings
from fastagi_router.server import Answer, CallLog
from fastagi_router.agi import AGIConnection
from fastagi_router.simulator import CallSpec, header_block

logutil.configure(LogSettings(levels={"fastagi_router.calls": "INFO"}))
conn = AGIConnection()
conn.receive_data(header_block(CallSpec()))
request = conn.next_event()
log = CallLog()

async def main():
    for _ in range(5):
        log.call(request, Answer([], "AGENT"), "answered", 1, started=1.0, decided=1.0)

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.count(" INFO fastagi_router.calls: call ") == 5
