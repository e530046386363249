"""Logging helpers: peer data is sanitised before it reaches a log line; `configure` sets
the format (text or JSON lines) and the levels from the ``[log]`` settings."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
import typing

if typing.TYPE_CHECKING:
    from fastagi_router.config import LogSettings

_LIMIT = 120


def sanitize(value: object, limit: int = _LIMIT) -> str:
    """Return ``value`` fit for one log line: control characters escaped, length bounded.

    A caller name or a header from a peer can hold anything, including newlines that would
    forge log lines; this keeps printable text as is and escapes the rest.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return text.encode("unicode_escape", errors="backslashreplace").decode("ascii")


_LEVELS = {level: logging.getLevelName(level) for level in (10, 20, 30, 40, 50)}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: How often buffered log lines are written out at the latest.
FLUSH_INTERVAL = 0.2


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, with the local time of the current second formatted once, not per line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Return ``YYYY-MM-DD HH:MM:SS,mmm`` in local time."""
        return self._time(record.created)

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        return f"{self._stamp},{int((created - second) * 1000):03d}"

    def line(
        self, created: float, level: int, name: str, message: str, fields: dict[str, object]
    ) -> str:
        """The line `format` would make of a record with these values (see `write_line`)."""
        level_name = _LEVELS.get(level) or logging.getLevelName(level)
        return f"{self._time(created)} {level_name} {name}: {message}"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the fields a
    record carries in ``call`` (the per-call line's), and the traceback as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as one line of JSON."""
        fields = getattr(record, "call", None)
        line = self._object(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            fields if isinstance(fields, dict) else {},
        )
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)

    def line(
        self, created: float, level: int, name: str, message: str, fields: dict[str, object]
    ) -> str:
        """The line `format` would make of a record with these values (see `write_line`)."""
        line = self._object(created, logging.getLevelName(level), name, message, fields)
        return json.dumps(line, ensure_ascii=False, default=str)

    @staticmethod
    def _object(
        created: float, level: str, name: str, message: str, fields: dict[str, object]
    ) -> dict[str, object]:
        seconds = int(created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        line: dict[str, object] = {
            "time": f"{stamp}.{int((created - seconds) * 1000):03d}Z",
            "level": level,
            "logger": name,
            "message": message,
        }
        line.update(fields)
        return line


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to a buffered copy of standard error: a line costs a memory copy, not a
    system call. The buffer is written out at once for WARNING and above, every
    `FLUSH_INTERVAL` seconds by a daemon thread, and when logging shuts down (at exit,
    `logging.shutdown` flushes every handler); only a SIGKILL can lose the last lines."""

    def __init__(self, fd: int = 2) -> None:
        raw = io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw, 65536), encoding="utf-8", errors="backslashreplace"
        )
        super().__init__(stream)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="log-flush", daemon=True)
        self._flusher.start()

    def flush(self) -> None:
        """Write out what is buffered."""
        with self.lock:  # type: ignore[union-attr]
            if not self.stream.closed:
                self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        """Buffer ``record``'s line; write the buffer out now for WARNING and above."""
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)

    @property
    def writes_text(self) -> bool:
        """Whether lines are formatted as text (`TextFormatter`), not JSON."""
        return type(self.formatter) is TextFormatter

    @property
    def line_formatter(self) -> TextFormatter | JSONFormatter:
        """The formatter, one of ours (`direct_handler` checks it)."""
        formatter = self.formatter
        assert isinstance(formatter, TextFormatter | JSONFormatter)
        return formatter

    def write_line(
        self,
        level: int,
        name: str,
        message: str,
        fields: dict[str, object],
        created: float | None = None,
    ) -> None:
        """Write what a record of ``level`` from logger ``name`` created at ``created``
        (now if None) would give, without making the record: for a hot caller that
        `direct_handler` said may do so."""
        if level < self.level:
            return
        when = time.time() if created is None else created
        self.write_lines(level, [self.line_formatter.line(when, level, name, message, fields)])

    def write_lines(self, level: int, lines: list[str]) -> None:
        """Write ``lines``, made by the formatter (`TextFormatter.line`,
        `JSONFormatter.line`) at ``level``, in one go."""
        if level < self.level or not lines:
            return
        text = "\n".join(lines) + "\n"
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(text)
            if level >= logging.WARNING:
                self.stream.flush()

    def close(self) -> None:
        """Stop the flushing thread and write out what is left."""
        self._stop.set()
        if self._flusher is not threading.current_thread():
            # Joined, not left to die at exit: a daemon thread caught holding the buffer's
            # lock while the interpreter finalises it aborts the process.
            self._flusher.join(timeout=1.0)
        self.flush()
        super().close()

    def _flush_often(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            with contextlib.suppress(Exception):
                self.flush()


def direct_handler(logger: logging.Logger) -> BufferedHandler | None:
    """Return the handler `configure` installed when it is the only place ``logger``'s
    records can go (no handler or filter on the way but it, formatting with one of ours):
    then `BufferedHandler.write_line` writes exactly what logging would. None otherwise
    (a test capturing logs, another handler): use ``logger`` as usual."""
    root = logging.root
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if (
        not isinstance(handler, BufferedHandler)
        or handler.filters
        or not isinstance(handler.formatter, TextFormatter | JSONFormatter)
    ):
        return None
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        if node.handlers or node.filters or not node.propagate or node.disabled:
            return None
        node = node.parent
    return handler


def configure(settings: LogSettings) -> None:
    """Send logs to standard error in ``settings.format`` at ``settings.level``, with the
    per-logger levels of ``settings.levels``. Called again (a reload), it replaces what it
    set before."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, BufferedHandler)]:
        root.removeHandler(old)
        old.close()
    handler = BufferedHandler()
    handler.setFormatter(JSONFormatter() if settings.format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name in _configured - set(settings.levels):
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level.upper())
    _configured.clear()
    _configured.update(settings.levels)
    # No format here shows the thread or process: do not look them up for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


_configured: set[str] = set()
