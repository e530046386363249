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
counts microseconds.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

from fastagi_router.agi import AGIRequest, Command
from fastagi_router.agi.commands import set_variables
from fastagi_router.logutil import direct_handler, sanitize

Variables = list[tuple[str, str]]

log = logging.getLogger("fastagi_router.calls")

#: Lines a second per kind of unusual session (overload, unknown script, header timeout,
#: shed) before the rest are only counted.
BURST = 10
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


class CallLog:
    """Writes the per-call lines; ``caller`` is ``full``, ``last4`` or ``none``."""

    def __init__(self, caller: str = "last4") -> None:
        self.caller = caller
        self._windows: dict[str, tuple[float, int, int]] = {}
        #: Masked caller numbers by the number as received (`_MASKS_KEPT` at most).
        self._masked: dict[str, str] = {}

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
        ms = (time.perf_counter() - started) * 1000
        uniqueid = sanitize(request.uniqueid) or "-"
        caller = self.mask(request.callerid)
        if answer is None:
            account = status = source = reason = "-"
        else:
            account = sanitize(answer.account)
            status, source, reason = answer.status, answer.source, answer.reason
        decide_ms = (decided - started) * 1000 if decided else None
        text = (
            f"call {uniqueid} account={account} caller={caller} status={status} "
            f"source={source} reason={reason} outcome={outcome} round_trips={round_trips} "
            f"decide_ms={'-' if decide_ms is None else f'{decide_ms:.3f}'} ms={ms:.3f}"
        )
        script = None
        if level == logging.WARNING and reason == "unknown_script":
            script = sanitize(request.script or "", 80)  # what the dialplan must fix
            text += f" script={script}"
        handler = direct_handler(log)
        if handler is not None and handler.writes_text:
            # Only our text handler would see it: the line is all there is to write.
            handler.write_line(level, log.name, text, {})
            return
        fields: dict[str, object] = {
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
            fields["script"] = script
        self._emit(level, text, (), fields)

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

    @staticmethod
    def _emit(
        level: int, message: object, args: tuple[object, ...], fields: dict[str, object]
    ) -> None:
        handler = direct_handler(log)
        if handler is not None:
            # Only our handler would see the record: write its line without making it.
            text = str(message) % args if args else str(message)
            handler.write_line(level, log.name, text, fields)
            return
        # makeRecord + handle, not log.log: no walk up the stack for a source line.
        record = log.makeRecord(log.name, level, _SRC, 0, message, args, None)
        record.call = fields
        log.handle(record)
