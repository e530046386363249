"""`Answer`, what a handler decided, and `CallLog`: one log line per FastAGI call.

Every call that reached its header block ends with one line on the ``fastagi_router.calls``
logger: the call's ``agi_uniqueid`` (to join with the CDR), its account, the caller number
(masked as ``log.caller`` says), how it was answered (status, source, reason), how the
session ended, its round trips and its timing. Calls answered in the ordinary way log at
INFO; calls refused for overload or naming an unknown script log at WARNING, and so do
connections shed or that sent no header block, at most `BURST` lines a second per kind with
a count of those left out: a flood must not turn into a flood of log lines.

The line is built without the stdlib's per-record overhead that does not matter here: no
stack walk to find the caller's source line, and when the only handler is the one
`logutil.configure` installed, no record at all (`logutil.direct_handler`): the call path
counts microseconds. In that case the INFO lines are also made in batches: a call leaves
its values in a list, and the lines are formatted and written together when `BATCH` calls
are waiting or `BATCH_DELAY` seconds after the first of them, whichever comes first (and
before any other line of this log, and when the server stops): the lines of a batch made
together cost about half of what each costs made between two calls (`bench.inprocess
--call-log text`). A line keeps the time its call ended.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
import weakref
from dataclasses import dataclass, field

from fastagi_router.agi import AGIRequest, Command
from fastagi_router.agi.commands import set_variables
from fastagi_router.logutil import direct_handler, sanitize

Variables = list[tuple[str, str]]

log = logging.getLogger("fastagi_router.calls")

#: Lines a second per kind of unusual session (overload, unknown script, header timeout,
#: shed) before the rest are only counted.
BURST = 10
#: INFO call lines made and written together, at most this many ...
BATCH = 64
#: ... and at most this many seconds after the first of them ended.
BATCH_DELAY = 0.1
CALLER_MODES = ("full", "last4", "none")
_LOUD_REASONS = frozenset({"overload", "unknown_script"})
_SRC = sys.intern(__file__)
_MASKS_KEPT = 4096
_MASKS_LEN = 64


@dataclass(frozen=True, slots=True)
class Answer:
    """A handler's answer: the variables to set, and the words that say what they mean in
    the metrics and the call log. ``status``, ``source`` and ``reason`` come from small
    fixed sets (they are metric labels); ``account`` is only logged."""

    variables: Variables
    status: str
    source: str = "none"
    reason: str = "none"
    account: str = ""
    _commands: tuple[Command, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def commands(self) -> tuple[Command, ...]:
        """The commands that set `variables` (`commands.set_variables`), built on first use
        and kept: the router hands out the same answer for a known caller again and again.
        Raises `LocalProtocolError` for a value no command can carry."""
        built = self._commands
        if built is None:
            built = tuple(set_variables(self.variables))
            object.__setattr__(self, "_commands", built)
        return built


#: A call's values for its line, taken when it ended: time.time(), the request, the answer,
#: the outcome, the round trips, ms, decide_ms (a plain tuple: made on every call).
_Ended = tuple[float, AGIRequest, "Answer | None", str, int, float, "float | None"]


class CallLog:
    """Writes the per-call lines; ``caller`` is ``full``, ``last4`` or ``none``."""

    def __init__(self, caller: str = "last4") -> None:
        self.caller = caller
        self._windows: dict[str, tuple[float, int, int]] = {}
        #: Masked caller numbers by the number as received (`_MASKS_KEPT` at most).
        self._masked: dict[str, str] = {}
        #: INFO lines not made yet (see the module's docstring), and the timer that will.
        self._pending: list[_Ended] = []
        self._timer: asyncio.TimerHandle | None = None

    def call(
        self,
        request: AGIRequest,
        answer: Answer | None,
        outcome: str,
        round_trips: int,
        *,
        started: float,
        decided: float,
    ) -> None:
        """Log one call that sent its header block. ``started`` and ``decided`` are
        `time.perf_counter` readings: the header block complete, the answer known (0 when
        there was none)."""
        level = logging.INFO
        if answer is not None and answer.reason in _LOUD_REASONS:
            level = logging.WARNING
            if not log.isEnabledFor(level) or not self._allow(answer.reason):
                return
        elif not log.isEnabledFor(level):
            return
        ended: _Ended = (
            time.time(),
            request,
            answer,
            outcome,
            round_trips,
            (time.perf_counter() - started) * 1000,
            (decided - started) * 1000 if decided else None,
        )
        pending = self._pending
        if level == logging.INFO and (pending or self._start_batch()):
            pending.append(ended)
            if len(pending) >= BATCH:
                self.flush()
            return
        self._write(level, ended)

    def _start_batch(self) -> bool:
        """Start a batch when lines may be made later: only our handler will see them (when
        a record is made, whoever else listens sees each line as it happens) and there is
        a running loop to make them on time."""
        if direct_handler(log) is None:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._timer = loop.call_later(BATCH_DELAY, self.flush)
        _batched.add(self)
        return True

    def flush(self) -> None:
        """Write the INFO lines still waiting to be made (see the module's docstring)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending
        if not pending:
            return
        self._pending = []
        handler = direct_handler(log)
        if handler is None:  # logging was set up again since: a record per line
            for ended in pending:
                self._write(logging.INFO, ended)
            return
        formatter, name, fields = handler.line_formatter, log.name, not handler.writes_text
        lines = []
        for ended in pending:
            text, values = self._line(logging.INFO, ended, fields)
            lines.append(formatter.line(ended[0], logging.INFO, name, text, values))
        handler.write_lines(logging.INFO, lines)

    def _write(self, level: int, ended: _Ended) -> None:
        text, fields = self._line(level, ended)
        self._emit(level, text, (), fields, ended[0])

    def _line(
        self, level: int, ended: _Ended, fields: bool = True
    ) -> tuple[str, dict[str, object]]:
        """The text of ``ended``'s line, and its fields for the JSON format (empty unless
        ``fields``)."""
        _, request, answer, outcome, round_trips, ms, decide_ms = ended
        uniqueid = sanitize(request.uniqueid) or "-"
        caller = self.mask(request.callerid)
        if answer is None:
            account = status = source = reason = "-"
        else:
            account = sanitize(answer.account)
            status, source, reason = answer.status, answer.source, answer.reason
        text = (
            f"call {uniqueid} account={account} caller={caller} status={status} "
            f"source={source} reason={reason} outcome={outcome} round_trips={round_trips} "
            f"decide_ms={'-' if decide_ms is None else f'{decide_ms:.3f}'} ms={ms:.3f}"
        )
        script = None
        if level == logging.WARNING and reason == "unknown_script":
            script = sanitize(request.script or "", 80)  # what the dialplan must fix
            text += f" script={script}"
        if not fields:
            return text, {}
        values: dict[str, object] = {
            "uniqueid": uniqueid,
            "account": account,
            "caller": caller,
            "status": status,
            "source": source,
            "reason": reason,
            "outcome": outcome,
            "round_trips": round_trips,
            "decide_ms": None if decide_ms is None else round(decide_ms, 3),
            "ms": round(ms, 3),
        }
        if script is not None:
            values["script"] = script
        return text, values

    def session(self, kind: str, peer: str) -> None:
        """Log a connection that ended without a call: ``header_timeout`` or ``shed``."""
        level = logging.INFO if kind == "header_timeout" else logging.WARNING
        if log.isEnabledFor(level) and self._allow(kind):
            fields: dict[str, object] = {"outcome": kind, "peer": sanitize(peer)}
            self._emit(level, "session from %s ended: %s", (fields["peer"], kind), fields)

    def mask(self, callerid: str) -> str:
        """The caller number as ``log.caller`` allows it in a log line."""
        masked = self._masked.get(callerid)
        if masked is None:
            masked = self._mask(callerid)
            if len(callerid) <= _MASKS_LEN:  # callers call again; no peer fills it up
                if len(self._masked) >= _MASKS_KEPT:
                    self._masked.clear()
                self._masked[callerid] = masked
        return masked

    def _mask(self, callerid: str) -> str:
        if self.caller == "none" or not callerid:
            return "-"
        if self.caller == "last4" and len(callerid) > 4:
            return "*" * min(len(callerid) - 4, 12) + sanitize(callerid[-4:])
        return sanitize(callerid, 40)

    def _allow(self, kind: str) -> bool:
        """True when a line of ``kind`` may be written now (`BURST` a second)."""
        now = time.monotonic()
        since, written, left_out = self._windows.get(kind, (-1.0, 0, 0))
        if now - since >= 1.0:
            self._windows[kind] = (now, 1, 0)
            if left_out:
                self._emit(
                    logging.WARNING,
                    "%d more %s line(s) left out of the log in one second",
                    (left_out, kind),
                    {"left_out": left_out, "outcome": kind},
                )
            return True
        if written < BURST:
            self._windows[kind] = (since, written + 1, left_out)
            return True
        self._windows[kind] = (since, written, left_out + 1)
        return False

    def _emit(
        self,
        level: int,
        message: object,
        args: tuple[object, ...],
        fields: dict[str, object],
        created: float | None = None,
    ) -> None:
        """Write one line now, after the lines waiting in the batch (``created``: its time,
        now if None)."""
        if self._pending:
            self.flush()
        handler = direct_handler(log)
        if handler is not None:
            # Only our handler would see the record: write its line without making it.
            text = str(message) % args if args else str(message)
            handler.write_line(level, log.name, text, fields, created)
            return
        # makeRecord + handle, not log.log: no walk up the stack for a source line.
        record = log.makeRecord(log.name, level, _SRC, 0, message, args, None)
        record.call = fields
        if created is not None:
            record.created = created
            record.msecs = (created - int(created)) * 1000
        log.handle(record)


#: Call logs that have had a batch: what is still in one when the process exits (a loop
#: stopped without `AGIServer.stop`) is written before logging's own shutdown flush.
_batched: weakref.WeakSet[CallLog] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for call_log in list(_batched):
        call_log._timer = None  # its loop is gone: nothing to cancel
        call_log.flush()
