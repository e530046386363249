"""Asterisk's side of FastAGI, in pure code: the header block and the replies of res_agi.

This is what the ``call`` command, the end-to-end tests and the benchmark play against the
router. Each behaviour follows the recordings in ``asterisk-transcripts/`` and res_agi.c:

* the header block is written the way ``launch_netscript()`` and ``setup_env()`` write it;
* command lines are split into words the way ``parse_args()`` splits them;
* ``SET VARIABLE`` needs exactly two words, ``GET DATA`` at least one, or the reply is the
  multi-line ``520-`` usage block; unknown commands get ``510``;
* ``EXEC MSet`` splits its data like ``__ast_app_separate_args()`` (at most 24 pairs);
* once the channel is hung up, commands that res_agi does not allow on a dead channel get
  ``511``, the others still work (recording 02);
* ``GET DATA`` answers from a scripted list of key presses: digits then ``#``, a timeout
  (``(timeout)``, digits possibly partial), or a hang-up (``-1``).

Timing (how long a prompt plays, what happens when the router sends during it) is left to
the asyncio driver in `fastagi_router.simulator.driver`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_ARGS = 128
SETVAR_USAGE = ("Sets a variable to the current channel.",)
GETDATA_USAGE = (
    "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
    "Returns the digits received from the channel at the other end.",
)
GENERIC_USAGE = ("See the AGI documentation for this command.",)
_USAGE_HEAD = "520-Invalid command syntax.  Proper usage follows:"
_USAGE_END = "520 End of proper usage."
# Commands res_agi allows on a dead channel (recording 02 shows these still answering); its
# command table does not flag CHANNEL STATUS or HANGUP, so those get 511 there.
_DEAD_OK = frozenset(
    {
        "GET VARIABLE",
        "GET FULL VARIABLE",
        "SET VARIABLE",
        "NOOP",
        "VERBOSE",
        "EXEC",
    }
)
_DEVICE_FUNC = re.compile(r"(DEVICE_STATE|EXTENSION_STATE)\(([^)]*)\)")
_SUBST = re.compile(r"\$\{([^{}]*)\}")


@dataclass
class CallSpec:
    """The channel placing the call: what Asterisk writes in the header block."""

    callerid: str = "0899990988"
    calleridname: str = "Test Caller"
    #: ``agi_network_script`` (path and query), or None for ``AGI(agi://host)`` with no path.
    script: str | None = "route"
    host: str = "127.0.0.1"
    port: int = 4573
    args: tuple[str, ...] = ()
    channel: str = "Local/19001234@from-pstn-00000000;2"
    uniqueid: str = "1795653722.1"
    context: str = "from-pstn"
    extension: str = "19001234"
    priority: int = 2
    language: str = "en"
    version: str = "23.4.1"
    accountcode: str = ""
    threadid: int = 140451265464000
    dnid: str = "unknown"
    rdnis: str = "unknown"

    @property
    def request(self) -> str:
        """``agi_request``: the AGI URL as the dialplan wrote it."""
        base = f"agi://{self.host}:{self.port}"
        return f"{base}/{self.script}" if self.script is not None else base


def header_block(spec: CallSpec) -> bytes:
    """Return the header block Asterisk sends first, byte for byte as res_agi writes it."""
    lines = ["agi_network: yes"]
    if spec.script is not None:
        lines.append(f"agi_network_script: {spec.script}")
    lines += [
        f"agi_request: {spec.request}",
        f"agi_channel: {spec.channel}",
        f"agi_language: {spec.language}",
        f"agi_type: {spec.channel.split('/', 1)[0]}",
        f"agi_uniqueid: {spec.uniqueid}",
        f"agi_version: {spec.version}",
        f"agi_callerid: {spec.callerid}",
        f"agi_calleridname: {spec.calleridname}",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {spec.dnid}",
        f"agi_rdnis: {spec.rdnis}",
        f"agi_context: {spec.context}",
        f"agi_extension: {spec.extension}",
        f"agi_priority: {spec.priority}",
        "agi_enhanced: 0.0",
        f"agi_accountcode: {spec.accountcode}",
        f"agi_threadid: {spec.threadid}",
    ]
    lines += [f"agi_arg_{n}: {arg}" for n, arg in enumerate(spec.args, start=1)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def parse_args(line: str) -> list[str]:
    """Split a command line into words exactly as res_agi's ``parse_args()`` does."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    whitespace = True
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                words.append("")
                current = []
                whitespace = False
            continue
        if char in " \t" and not quoted and not escaped:
            if not whitespace:
                words[-1] = "".join(current)
            whitespace = True
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            if len(words) >= MAX_ARGS - 1:
                escaped = False
                continue
            words.append("")
            current = []
            whitespace = False
        current.append(char)
        escaped = False
    if words and not whitespace:
        words[-1] = "".join(current)
    return words


def separate_app_args(data: str, delim: str = ",", max_args: int = 24) -> list[str]:
    """Split application data as ``__ast_app_separate_args(remove_chars=1)`` does: on
    ``delim`` outside ``()``, ``[]`` and quotes; quotes removed; backslash keeps the next
    character; the last of ``max_args`` takes the rest."""
    args: list[str] = []
    i = 0
    n = len(data)
    ended_on_delim = False
    # As in C, the nesting counters are not reset between arguments.
    paren = bracket = 0
    quote = False
    while i < n and len(args) < max_args - 1:
        current: list[str] = []
        ended_on_delim = False
        while i < n:
            char = data[i]
            if char == "(":
                paren += 1
            elif char == ")" and paren:
                paren -= 1
            elif char == "[":
                bracket += 1
            elif char == "]" and bracket:
                bracket -= 1
            elif char == '"' and delim != '"':
                quote = not quote
                i += 1
                continue
            elif char == "\\":
                i += 1
                if i < n:
                    current.append(data[i])
                i += 1
                continue
            elif char == delim and not paren and not quote and not bracket:
                i += 1
                ended_on_delim = True
                break
            current.append(char)
            i += 1
        args.append("".join(current))
    if i < n:
        args.append(data[i:])
    elif ended_on_delim:
        args.append("")
    return args


@dataclass(frozen=True)
class Keypress:
    """What the caller does at one GET DATA: type ``digits`` after ``delay`` seconds, then
    ``end`` the input with ``#`` (``"#"``), let it time out (``"timeout"``), or hang up
    (``"hangup"``)."""

    digits: str = ""
    end: str = "#"
    delay: float = 0.0


@dataclass
class Outcome:
    """What the channel does with one command: the reply lines, and for a prompt how long it
    plays before replying (the driver lets the router interrupt it in that time)."""

    lines: list[str]
    prompt: bool = False
    duration: float = 0.0


@dataclass
class SimulatedChannel:
    """An Asterisk channel running ``AGI()``: executes command lines, keeps variables."""

    spec: CallSpec = field(default_factory=CallSpec)
    keypresses: list[Keypress] = field(default_factory=list)
    #: Answers of ``${DEVICE_STATE(x)}`` / ``${EXTENSION_STATE(x)}``; "" when not listed,
    #: as on an Asterisk without func_devstate (recording 01).
    device_states: dict[str, str] = field(default_factory=dict)
    mset_available: bool = True
    #: The channel variable AGIEXECFULL: EXEC data is substituted first.
    agiexecfull: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    answered: bool = False
    hung_up: bool = False
    #: Every variable the router set, in order (name, value), including repeats.
    assignments: list[tuple[str, str]] = field(default_factory=list)

    def _lookup(self, name: str) -> str | None:
        if name == "CALLERID(num)":
            return self.spec.callerid
        if name == "CALLERID(name)":
            return self.spec.calleridname
        if name == "EXTEN":
            return self.spec.extension
        if name == "CONTEXT":
            return self.spec.context
        device = _DEVICE_FUNC.fullmatch(name)
        if device:
            return self.device_states.get(device.group(2), "")
        return self.variables.get(name)

    def substitute(self, text: str) -> str:
        """Replace ``${NAME}`` as Asterisk would (innermost first, unknown -> empty)."""
        previous = None
        while previous != text:
            previous = text
            text = _SUBST.sub(lambda m: self._lookup(m.group(1)) or "", text)
        return text

    def _set(self, name: str, value: str) -> None:
        self.variables[name.lstrip("_")] = value
        self.assignments.append((name.lstrip("_"), value))

    def execute(self, line: str) -> Outcome:
        """Run one command line and return what Asterisk replies."""
        argv = parse_args(line)
        if not argv:
            return Outcome(["510 Invalid or unknown command"])
        verb = _verb(argv)
        if verb is None:
            return Outcome(["510 Invalid or unknown command"])
        if self.hung_up and verb not in _DEAD_OK:
            return Outcome(["511 Command Not Permitted on a dead channel or intercept routine"])
        handler = getattr(self, "_cmd_" + verb.lower().replace(" ", "_"))
        outcome: Outcome = handler(argv)
        return outcome

    @staticmethod
    def _usage(lines: tuple[str, ...]) -> Outcome:
        return Outcome([_USAGE_HEAD, *lines, _USAGE_END])

    def _cmd_answer(self, argv: list[str]) -> Outcome:
        self.answered = True
        return Outcome(["200 result=0"])

    def _cmd_noop(self, argv: list[str]) -> Outcome:
        return Outcome(["200 result=0"])

    def _cmd_verbose(self, argv: list[str]) -> Outcome:
        return Outcome(["200 result=1"]) if len(argv) >= 2 else self._usage(GENERIC_USAGE)

    def _cmd_hangup(self, argv: list[str]) -> Outcome:
        self.hung_up = True
        return Outcome(["200 result=1"])

    def _cmd_channel_status(self, argv: list[str]) -> Outcome:
        return Outcome(["200 result=6" if self.answered else "200 result=4"])

    def _cmd_get_variable(self, argv: list[str]) -> Outcome:
        if len(argv) != 3:
            return self._usage(GENERIC_USAGE)
        value = self._lookup(argv[2])
        return Outcome([f"200 result=1 ({value})" if value is not None else "200 result=0"])

    def _cmd_get_full_variable(self, argv: list[str]) -> Outcome:
        if len(argv) < 4:
            return self._usage(GENERIC_USAGE)
        return Outcome([f"200 result=1 ({self.substitute(argv[3])})"])

    def _cmd_set_variable(self, argv: list[str]) -> Outcome:
        if len(argv) != 4:
            return self._usage(SETVAR_USAGE)
        self._set(argv[2], argv[3])
        return Outcome(["200 result=1"])

    def _cmd_exec(self, argv: list[str]) -> Outcome:
        if len(argv) < 2:
            return self._usage(GENERIC_USAGE)
        app = argv[1].lower()
        data = argv[2] if len(argv) > 2 else ""
        if self.agiexecfull:
            data = self.substitute(data)
        if app == "mset" and self.mset_available:
            for pair in separate_app_args(data):
                parts = separate_app_args(pair, "=", 2)
                if len(parts) == 2:
                    self._set(parts[0], parts[1])
            return Outcome(["200 result=0"])
        if app == "set":
            name, _, value = data.partition("=")
            self._set(name, value)
            return Outcome(["200 result=0"])
        if app in ("noop", "verbose", "log", "wait"):
            return Outcome(["200 result=0"])
        return Outcome(["200 result=-2"])

    def _cmd_get_data(self, argv: list[str]) -> Outcome:
        if len(argv) < 3:
            return self._usage(GETDATA_USAGE)
        max_digits = int(argv[4]) if len(argv) > 4 and argv[4].isdigit() else 1024
        press = self.keypresses.pop(0) if self.keypresses else Keypress("", "timeout", 0.0)
        digits = press.digits[:max_digits]
        if press.end == "hangup":
            self.hung_up = True
            return Outcome(["200 result=-1"], prompt=True, duration=press.delay)
        if press.end == "timeout" and len(press.digits) < max_digits:
            return Outcome([f"200 result={digits} (timeout)"], prompt=True, duration=press.delay)
        return Outcome([f"200 result={digits}"], prompt=True, duration=press.delay)

    def _cmd_stream_file(self, argv: list[str]) -> Outcome:
        if len(argv) < 4:
            return self._usage(GENERIC_USAGE)
        return Outcome(["200 result=0 endpos=3520"], prompt=True)

    def _cmd_wait_for_digit(self, argv: list[str]) -> Outcome:
        if len(argv) != 4:
            return self._usage(GENERIC_USAGE)
        return Outcome(["200 result=0"], prompt=True)

    def _cmd_say_digits(self, argv: list[str]) -> Outcome:
        if len(argv) < 4:
            return self._usage(GENERIC_USAGE)
        return Outcome(["200 result=0"], prompt=True)


_VERBS = (
    ("GET", "FULL", "VARIABLE"),
    ("WAIT", "FOR", "DIGIT"),
    ("GET", "VARIABLE"),
    ("SET", "VARIABLE"),
    ("GET", "DATA"),
    ("STREAM", "FILE"),
    ("SAY", "DIGITS"),
    ("CHANNEL", "STATUS"),
    ("ANSWER",),
    ("NOOP",),
    ("VERBOSE",),
    ("EXEC",),
    ("HANGUP",),
)


def _verb(argv: list[str]) -> str | None:
    upper = [word.upper() for word in argv[:3]]
    for words in _VERBS:
        if tuple(upper[: len(words)]) == words:
            return " ".join(words)
    return None
