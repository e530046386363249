"""A small parser, linter and simulator for Asterisk ``extensions.conf`` files.

No Asterisk runs in the test environment, so this module reads dialplan files the way
Asterisk 20 does (``main/config.c`` for the file syntax, ``pbx/pbx_config.c`` for what an
``exten``/``same`` line means) and reports what Asterisk would warn about, or do silently
wrong, at ``dialplan reload``:

Parsing
    ``[context]``, ``[name](+)`` / ``(!)`` / ``(template)``, ``name = value`` and
    ``name => value``, ``#include`` / ``#tryinclude`` (through a resolver you pass), ``;``
    comments with ``\\;`` escapes, ``;-- block comments --;``. Only the first ``[globals]``
    and ``[general]`` sections count, as in Asterisk.

Checks (`lint_files`, `Dialplan.lint`)
    - every line parses: a category, a directive, or ``name = value``;
    - ``exten => ext,prio(label),App(args)``: priority 1, ``n``, ``s``, ``hint``, ``n+2``;
      ``same =>`` and ``n`` only after an ``exten`` of the same context;
    - each extension's priorities start at 1 with no gap and no duplicate; labels are
      unique per extension;
    - balanced ``()``, ``[]``, ``{}`` in application arguments; every ``${...}`` and
      ``$[...]`` closed; balanced quotes in ``$[...]``;
    - applications from a list of real Asterisk 20 applications (and not one that
      Asterisk 21 removed); functions from a list of real dialplan functions;
    - every ``Goto``/``GotoIf``/``GotoIfTime``/``Gosub``/``GosubIf`` target (also inside
      ``ExecIf``) resolves to a context, extension and priority or label; a target built
      from ``${VAR}`` is checked for every literal value ``VAR`` is given in the files;
    - every ``include =>`` names an existing context; a repeated ``[globals]`` is reported.

Simulation (`Simulator`)
    Runs a context the way the PBX core would, for the applications and functions the
    SmartRouting dialplan uses, with the AGI, ``Dial`` and ``Queue`` outcomes supplied by
    the test. Anything it does not model raises `SimulationError` instead of guessing.
"""

from __future__ import annotations

import glob as globmod
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- reference lists ----------------------------------------------------------------------


def _names(text: str) -> frozenset[str]:
    """The whitespace-separated names in ``text``, lower-cased (Asterisk ignores case)."""
    return frozenset(name.lower() for name in text.split())


#: Applications of Asterisk 20 (core and the usual modules), compared case-insensitively.
KNOWN_APPS = _names(
    """
    AddQueueMember ADSIProg AELSub AgentLogin AgentRequest AGI AlarmReceiver AMD Answer
    AttendedTransfer AudioSocket Authenticate BackGround BackgroundDetect BlindTransfer
    Bridge BridgeAdd BridgeWait Busy CallCompletionCancel CallCompletionRequest
    CELGenUserEvent ChanIsAvail ChannelRedirect ChanSpy ClearHash ConfBridge
    ConfKick Congestion ContinueWhile ControlPlayback DAHDIAcceptR2Call DAHDIScan
    DAHDISendCallreroutingFacility DAHDISendKeypadFacility DateTime DBdeltree DeadAGI Dial
    Dictate Directory DISA DumpChan EAGI Echo EndWhile Exec ExecIf ExecIfTime ExitWhile
    ExtenSpy ExternalIVR Festival Flash FollowMe GetCPEID Gosub GosubIf Goto GotoIf
    GotoIfTime Hangup HangupCauseClear ICES ImportVar Incomplete JabberJoin JabberLeave
    JabberSend JabberSendGroup JabberStatus JACK Log MailboxExists MessageSend Milliwatt
    MinivmAccMess MinivmDelete MinivmGreet MinivmMWI MinivmNotify MinivmRecord MixMonitor
    Morsecode MP3Player MSet MusicOnHold NBScat NoOp ODBC_Commit ODBC_Rollback ODBCFinish
    Originate Page Park ParkAndAnnounce ParkedCall PauseQueueMember Pickup PickupChan
    PJSIPHangup Playback PlayTones PrivacyManager Proceeding Progress Queue QueueLog
    QueueUpdate RaiseException Read ReadExten ReceiveFAX ReceiveMF ReceiveSF ReceiveText
    Record Reload RemoveQueueMember ResetCDR RetryDial Return Ringing SayAlpha SayAlphaCase
    SayCountedAdj SayCountedNoun SayDigits SayMoney SayNumber SayOrdinal SayPhonetic
    SayUnixTime SendDTMF SendFAX SendImage SendMF SendSF SendText SendURL Set
    SetAMAFlags Signal SLAStation SLATrunk SMS SoftHangup SpeechActivateGrammar
    SpeechBackground SpeechCreate SpeechDeactivateGrammar SpeechDestroy SpeechLoadGrammar
    SpeechProcessingSound SpeechStart SpeechUnloadGrammar StackPop StartMusicOnHold Stasis
    StopMixMonitor StopMusicOnHold StopPlayTones StoreDTMF StreamEcho System TestClient
    TestServer ToneScan Transfer TryExec TrySystem UnpauseQueueMember UserEvent Verbose
    VMAuthenticate VMSayName VoiceMail VoiceMailMain VoiceMailPlayMsg Wait WaitDigit
    WaitExten WaitForCondition WaitForNoise WaitForRing WaitForSignal WaitForSilence
    WaitUntil While Zapateller
    """
)

#: Applications deprecated in Asterisk 20 and removed in 21: a dialplan for 20+ avoids them.
REMOVED_APPS = {
    name.lower(): why
    for name, why in {
        "Macro": "use Gosub",
        "MacroExclusive": "use Gosub",
        "MacroExit": "use Return",
        "MacroIf": "use GosubIf",
        "Monitor": "use MixMonitor",
        "StopMonitor": "use StopMixMonitor",
        "ChangeMonitor": "use MixMonitor",
        "PauseMonitor": "use MixMonitor",
        "UnpauseMonitor": "use MixMonitor",
        "SIPAddHeader": "chan_sip is gone: use PJSIP_HEADER",
        "SIPRemoveHeader": "chan_sip is gone: use PJSIP_HEADER",
        "SIPDtmfMode": "chan_sip is gone: use PJSIP_DTMF_MODE",
        "NoCDR": "use CDR_PROP(disable)",
        "MeetMe": "use ConfBridge",
    }.items()
}

#: Dialplan functions (``${NAME(...)}``), compared case-insensitively.
KNOWN_FUNCTIONS = _names(
    """
    AES_DECRYPT AES_ENCRYPT AGC AGENT AMI_CLIENT ARRAY AST_CONFIG AST_SORCERY AUDIOHOOK_INHERIT
    BASE64_DECODE BASE64_ENCODE BLACKLIST CALENDAR_BUSY CALENDAR_EVENT CALENDAR_QUERY
    CALENDAR_QUERY_RESULT CALENDAR_WRITE CALLCOMPLETION CALLERID CDR CDR_PROP CHANNEL
    CHANNEL_EXISTS CHANNELS CONFBRIDGE CONFBRIDGE_CHANNELS CONFBRIDGE_INFO CONNECTEDLINE
    CSV_QUOTE CURL CURLOPT CUT DB DB_DELETE DB_EXISTS DB_KEYCOUNT DB_KEYS DEC DENOISE
    DEVICE_STATE DIALGROUP DIALPLAN_EXISTS DUNDIQUERY DUNDIRESULT DUNDILOOKUP ENUMLOOKUP
    ENUMQUERY ENUMRESULT ENV EVAL EVAL_EXTEN EXCEPTION EXISTS EXPORT EXTENSION_STATE FAXOPT
    FEATURE FEATUREMAP FIELDNUM FIELDQTY FILE FILE_COUNT_LINE FILE_FORMAT FILTER
    FRAME_DROP FRAME_TRACE GEOLOC_PROFILE GLOBAL GROUP GROUP_COUNT GROUP_LIST
    GROUP_MATCH_COUNT HANGUPCAUSE HANGUPCAUSE_KEYS HASH HASHKEYS HINT IAXPEER IAXVAR ICONV
    IF IFMODULE IFTIME IMPORT INC ISNULL JABBER_RECEIVE JABBER_STATUS JITTERBUFFER
    JSON_DECODE KEYPADHASH LEN LISTFILTER LOCAL LOCAL_PEEK LOCK LTRIM MAILBOX_EXISTS
    MASTER_CHANNEL MATH MD5 MESSAGE MESSAGE_DATA MIXMONITOR MUTEAUDIO ODBC ODBC_FETCH
    PASSTHRU PERIODIC_HOOK PITCH_SHIFT PJSIP_AOR PJSIP_CONTACT PJSIP_DIAL_CONTACTS
    PJSIP_DTMF_MODE PJSIP_ENDPOINT PJSIP_HEADER PJSIP_HEADERS PJSIP_MEDIA_OFFER
    PJSIP_MOH_PASSTHROUGH PJSIP_PARSE_URI PJSIP_PARSE_URI_FROM PJSIP_RESPONSE_HEADER
    PJSIP_RESPONSE_HEADERS PJSIP_SEND_SESSION_REFRESH POLARITY POP PUSH QUEUE_EXISTS
    QUEUE_GET_CHANNEL QUEUE_MEMBER QUEUE_MEMBER_COUNT QUEUE_MEMBER_LIST QUEUE_MEMBER_PENALTY
    QUEUE_VARIABLES QUEUE_WAITING_COUNT QUOTE RAND REALTIME REALTIME_DESTROY
    REALTIME_FIELD REALTIME_HASH REALTIME_STORE REDIRECTING REGEX REPLACE RTRIM SCRAMBLE
    SET SHA1 SHARED SHELL SHIFT SIPPEER SMDI_MSG SMDI_MSG_RETRIEVE SORT SPEECH
    SPEECH_ENGINE SPEECH_GRAMMAR SPEECH_RESULTS_TYPE SPEECH_SCORE SPEECH_TEXT SPRINTF
    SQL_ESC SQL_ESC_BACKSLASHES SRVQUERY SRVRESULT STACK_PEEK STAT STRBETWEEN STREQUAL
    STRFTIME STRPTIME STRREPLACE SYSINFO TALK_DETECT TESTTIME TIMEOUT TOLOWER TOUPPER
    TRIM TRYLOCK TXTCIDNAME UNLOCK UNSHIFT URIDECODE URIENCODE VALID_EXTEN VERSION
    VM_INFO VOLUME
    """
)

#: Applications whose arguments name a dialplan location (context,exten,priority).
_JUMPS = {"goto", "gotoif", "gotoiftime", "gosub", "gosubif"}


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing Asterisk would reject, warn about, or do differently from the intent."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Step:
    """One priority of one extension: ``App(args)`` as the PBX core stores it."""

    context: str
    exten: str
    priority: int
    label: str | None
    app: str
    args: str
    file: str
    line: int


@dataclass
class Context:
    """A dialplan context: its extensions (name -> priority -> step) and includes."""

    name: str
    extens: dict[str, dict[int, Step]] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    includes: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class _Category:
    name: str
    file: str
    line: int
    template: bool = False
    items: list[tuple[str, str, str, int]] = field(default_factory=list)  # name, value, file, line


# -- low-level text helpers ---------------------------------------------------------------


def strip_comment(line: str, in_block: bool) -> tuple[str, bool]:
    """Return ``line`` without comments, and whether a ``;--`` block comment is still open.

    As ``config.c``: ``;`` starts a comment unless escaped as ``\\;`` (the backslash is
    dropped); ``;--`` (not ``;---``) opens a block comment that ``--;`` closes.
    """
    out: list[str] = []
    i = 0
    while i < len(line):
        if in_block:
            end = line.find("--;", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 3, False
            continue
        ch = line[i]
        if ch == ";":
            if out and out[-1] == "\\":
                out[-1] = ";"
                i += 1
                continue
            if line.startswith(";--", i) and not line.startswith(";---", i):
                in_block = True
                i += 3
                continue
            break
        out.append(ch)
        i += 1
    return "".join(out), in_block


def separate_args(data: str, delim: str, max_args: int, remove_chars: bool = False) -> list[str]:
    """Split application data like ``__ast_app_separate_args()`` in ``main/app.c``.

    ``()`` and ``[]`` nest and double quotes group, so a delimiter inside them does not
    split; the last argument takes the rest as is. With ``remove_chars`` (what
    ``AST_STANDARD_APP_ARGS`` does) quotes and backslashes are dropped, as applications
    see them.
    """
    buf = list(data)
    args: list[str] = []
    i = 0
    paren = bracket = 0
    quote = False
    was_delim = -1
    while i < len(buf) and len(args) < max_args - 1:
        start = i
        ended = False
        while i < len(buf):
            ch = buf[i]
            if ch == "(":
                paren += 1
            elif ch == ")":
                paren = max(0, paren - 1)
            elif ch == "[":
                bracket += 1
            elif ch == "]":
                bracket = max(0, bracket - 1)
            elif ch == '"' and delim != '"':
                quote = not quote
                if remove_chars:
                    del buf[i]
                    continue
            elif ch == "\\":
                if remove_chars:
                    del buf[i]  # the next character, now at i, is taken literally
                else:
                    i += 1
            elif ch == delim and not paren and not quote and not bracket:
                args.append("".join(buf[start:i]))
                was_delim = i
                i += 1
                ended = True
                break
            i += 1
        if not ended:
            args.append("".join(buf[start:i]))
    if i < len(buf) or (i > 0 and i - 1 == was_delim):
        args.append("".join(buf[i:]))
    return args


def find_close(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Return the index just past the ``close_ch`` matching an opening before ``start``.

    Counts every ``open_ch``/``close_ch`` like ``pbx_substitute_variables_helper_full``;
    returns -1 when it never closes.
    """
    depth = 1
    i = start
    while i < len(text):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def iter_expressions(text: str) -> Iterable[tuple[str, str]]:
    """Yield ``("$", inner)`` for each ``${inner}`` and ``("[", inner)`` for each ``$[inner]``,
    outer ones first, nested ones after. Raises ValueError on one that is never closed."""
    i = 0
    while i < len(text) - 1:
        if text[i] == "$" and text[i + 1] in "{[":
            kind = text[i + 1]
            close = "}" if kind == "{" else "]"
            end = find_close(text, i + 2, kind, close)
            if end < 0:
                raise ValueError(f"'${kind}' at column {i + 1} is never closed")
            inner = text[i + 2 : end - 1]
            yield ("$" if kind == "{" else "[", inner)
            yield from iter_expressions(inner)
            i = end
        else:
            i += 1


def variable_parts(inner: str) -> tuple[str, bool]:
    """Return (name, is_function) for the inside of ``${...}`` (``NAME``, ``NAME:1:2``,
    ``FUNC(args)``, ``FUNC(args):1``)."""
    depth = 0
    base = inner
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ":" and depth == 0:
            base = inner[:i]
            break
    if base.endswith(")") and "(" in base:
        return base[: base.index("(")], True
    return base, False


def check_balance(text: str) -> str | None:
    """Return a message when ``()``, ``[]`` or ``{}`` in ``text`` do not pair up."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "([{":
            stack.append((ch, i))
        elif ch in pairs:
            if not stack or stack[-1][0] != pairs[ch]:
                return f"unbalanced {ch!r} at column {i + 1}"
            stack.pop()
        i += 1
    if stack:
        ch, pos = stack[-1]
        return f"unbalanced {ch!r} at column {pos + 1} is never closed"
    return None


def pbx_strsep(text: str) -> tuple[str, str | None]:
    """Split at the first ``,`` outside ``[...]`` (backslash escapes), as pbx_config does for
    the extension name."""
    square = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "[":
            square += 1
        elif ch == "]" and square:
            square -= 1
        elif ch == "\\":
            i += 1
        elif ch == "," and not square:
            return text[:i], text[i + 1 :]
        i += 1
    return text, None


def pattern_matches(pattern: str, exten: str) -> bool:
    """True when extension ``exten`` matches ``pattern`` (exact, or an ``_`` pattern)."""
    if not pattern.startswith("_"):
        return pattern == exten
    regex = []
    i = 1
    while i < len(pattern):
        ch = pattern[i]
        if ch in "xX":
            regex.append("[0-9]")
        elif ch in "zZ":
            regex.append("[1-9]")
        elif ch in "nN":
            regex.append("[2-9]")
        elif ch == ".":
            regex.append(".+")
        elif ch == "!":
            regex.append(".*")
        elif ch == "[":
            end = pattern.find("]", i)
            if end < 0:
                return False
            regex.append("[" + re.escape(pattern[i + 1 : end]).replace("\\-", "-") + "]")
            i = end
        else:
            regex.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), exten) is not None


# -- the dialplan -------------------------------------------------------------------------

Resolver = Callable[[str, Path], list[Path] | None]


@dataclass
class Dialplan:
    """Everything read from one ``extensions.conf`` and its ``#include``s."""

    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)
    general: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: Literal values each variable is given (globals and ``Set(NAME=literal)``).
    values: dict[str, set[str]] = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------

    def find_exten(
        self, context: str, exten: str, seen: frozenset[str] = frozenset()
    ) -> tuple[str, str] | None:
        """Return (context, extension name) that ``exten`` runs in ``context``, following
        ``include =>`` like the PBX core; None when nothing matches."""
        ctx = self.contexts.get(context)
        if ctx is None or context in seen:
            return None
        if exten in ctx.extens:
            return context, exten
        for name in ctx.extens:
            if pattern_matches(name, exten):
                return context, name
        for included, _file, _line in ctx.includes:
            found = self.find_exten(included, exten, seen | {context})
            if found:
                return found
        return None

    def find_priority(self, context: str, exten: str, priority: str) -> Step | None:
        """Return the step at ``priority`` (a number or a label) of ``exten`` in ``context``."""
        found = self.find_exten(context, exten)
        if found is None:
            return None
        steps = self.contexts[found[0]].extens[found[1]]
        if priority.isdigit():
            return steps.get(int(priority))
        return next((s for s in steps.values() if s.label == priority), None)

    def steps(self) -> Iterable[Step]:
        """Every step of every context, in file order within each extension."""
        for ctx in self.contexts.values():
            for steps in ctx.extens.values():
                yield from sorted(steps.values(), key=lambda s: s.priority)

    # -- checks ----------------------------------------------------------------------------

    def lint(self) -> list[Problem]:
        """Return every problem: those found while parsing, then the semantic checks."""
        problems = list(self.problems)
        for ctx in self.contexts.values():
            for exten, steps in ctx.extens.items():
                numbers = sorted(steps)
                if numbers and numbers[0] != 1:
                    first = steps[numbers[0]]
                    problems.append(
                        Problem(
                            first.file,
                            first.line,
                            f"extension {exten!r} of [{ctx.name}] starts at priority "
                            f"{numbers[0]}, not 1: Asterisk never runs it",
                        )
                    )
                for before, after in itertools.pairwise(numbers):
                    if after != before + 1:
                        step = steps[after]
                        problems.append(
                            Problem(
                                step.file,
                                step.line,
                                f"gap in extension {exten!r} of [{ctx.name}]: priority "
                                f"{before} is followed by {after}; the call stops at {before}",
                            )
                        )
            for included, file, line in ctx.includes:
                if included not in self.contexts:
                    problems.append(Problem(file, line, f"include => {included}: no such context"))
        for step in self.steps():
            problems.extend(self._check_step(step))
        return problems

    def _check_step(self, step: Step) -> list[Problem]:
        out: list[Problem] = []

        def bad(message: str) -> None:
            out.append(Problem(step.file, step.line, message))

        self._check_app(step.app, step.args, step, bad)
        return out

    def _check_app(self, app: str, args: str, step: Step, bad: Callable[[str], None]) -> None:
        lower = app.lower()
        if lower in REMOVED_APPS:
            bad(f"application {app} is removed in Asterisk 21 ({REMOVED_APPS[lower]})")
        elif lower not in KNOWN_APPS:
            bad(f"unknown application {app!r}")
        message = check_balance(args)
        if message:
            bad(f"{app}(): {message}")
            return
        try:
            expressions = list(iter_expressions(args))
        except ValueError as exc:
            bad(f"{app}(): {exc}")
            return
        for kind, inner in expressions:
            if kind == "$":
                name, is_function = variable_parts(inner)
                if not name:
                    bad(f"{app}(): empty variable name in '${{{inner}}}'")
                elif is_function and name.lower() not in KNOWN_FUNCTIONS:
                    bad(f"{app}(): unknown function {name}()")
            elif inner.count('"') % 2:
                bad(f"{app}(): unbalanced quotes in '$[{inner}]'")
        if lower == "execif":
            self._check_execif(args, step, bad)
        elif lower in _JUMPS:
            for target in self._jump_targets(lower, args):
                self._check_target(target, step, bad)

    def _check_execif(self, args: str, step: Step, bad: Callable[[str], None]) -> None:
        parts = separate_args(args, "?", 2)
        if len(parts) < 2:
            bad("ExecIf(): expected 'expression?App(args)[:App(args)]'")
            return
        for branch in separate_args(parts[1], ":", 2):
            call = branch.strip()
            if not call:
                continue
            match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?", call, re.S)
            if not match:
                bad(f"ExecIf(): cannot read the application call {call!r}")
                continue
            self._check_app(match.group(1), match.group(2) or "", step, bad)

    @staticmethod
    def _jump_targets(app: str, args: str) -> list[str]:
        if app in ("goto", "gosub"):
            return [args]
        if app == "gosubif":  # app_stack.c: paren-aware split on '?', then on ':'
            parts = separate_args(args, "?", 2)
            branches = separate_args(parts[1], ":", 2) if len(parts) == 2 else [""]
        else:  # GotoIf, GotoIfTime (pbx_builtins.c): plain strsep on '?', then on ':'
            _condition, question, rest = args.partition("?")
            true, _, false = rest.partition(":")
            branches = [true, false] if question else [""]
        return [b for b in branches if b.strip()] or [""]

    def _check_target(self, target: str, step: Step, bad: Callable[[str], None]) -> None:
        location = target.strip()
        if step.app.lower().startswith("gosub") or ("(" in location and "${" not in location):
            location = location.split("(", 1)[0].strip()  # Gosub arguments: not a location
        if not location:
            bad(f"{step.app}(): empty jump target")
            return
        for candidate in self._expand(location):
            if candidate is None:
                bad(
                    f"{step.app}(): cannot check target {location!r}: a variable in it is "
                    "given no literal value in these files"
                )
                return
            parts = [p.strip() for p in candidate.split(",")]
            if len(parts) > 3:
                bad(f"{step.app}(): target {candidate!r} has more than 3 parts")
                continue
            context, exten, priority = [step.context, step.exten][: 3 - len(parts)] + parts
            if priority.startswith(("+", "-")) and priority[1:].isdigit():
                continue  # relative priority: checked when the extension is
            if context not in self.contexts:
                bad(f"{step.app}(): target {candidate!r}: no context [{context}]")
            elif self.find_exten(context, exten) is None:
                bad(f"{step.app}(): target {candidate!r}: no extension {exten!r} in [{context}]")
            elif self.find_priority(context, exten, priority) is None:
                what = "priority" if priority.isdigit() else "label"
                bad(
                    f"{step.app}(): target {candidate!r}: no {what} {priority!r} in "
                    f"extension {exten!r} of [{context}]"
                )

    def _expand(self, text: str) -> list[str | None]:
        """Every literal form of ``text`` given the known values of its ``${VAR}``s; a None
        in the result means a variable has no known value."""
        match = re.search(r"\$\{([A-Za-z0-9_]+)\}", text)
        if match is None:
            return [None] if "${" in text or "$[" in text else [text]
        values = self.values.get(match.group(1))
        if not values:
            return [None]
        out: list[str | None] = []
        for value in sorted(values):
            out.extend(self._expand(text[: match.start()] + value + text[match.end() :]))
        return out


# -- loading ------------------------------------------------------------------------------


def default_resolver(root: Path) -> Resolver:
    """Resolve ``#include`` names against ``root`` (Asterisk: against /etc/asterisk)."""

    def resolve(name: str, _from: Path) -> list[Path] | None:
        path = Path(name) if name.startswith("/") else root / name
        if any(c in name for c in "*?["):
            found = sorted(Path(p) for p in globmod.glob(str(path)))
            return found or None
        return [path] if path.is_file() else None

    return resolve


def _read_categories(
    path: Path, resolver: Resolver, cats: list[_Category], problems: list[Problem], depth: int = 0
) -> None:
    """Append the categories of ``path`` (and its includes) to ``cats``, like config.c."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(name, 0, f"cannot read: {exc}"))
        return
    in_block = False
    block_start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        was_block = in_block
        line, in_block = strip_comment(raw, in_block)
        if in_block and not was_block:
            block_start = lineno
        line = line.strip()
        if not line:
            continue
        if line.startswith("["):
            _category_line(line, name, lineno, cats, problems)
        elif line.startswith("#"):
            match = re.fullmatch(r"#(\w+)\s*(.*)", line)
            directive = match.group(1).lower() if match else ""
            argument = match.group(2).strip().strip('"').strip("<>") if match else ""
            if directive not in ("include", "tryinclude") or not argument:
                problems.append(Problem(name, lineno, f"unsupported directive {line!r}"))
                continue
            if depth >= 10:
                problems.append(Problem(name, lineno, "#include nested too deep"))
                continue
            found = resolver(argument, path)
            if found is None:
                if directive == "include":
                    problems.append(Problem(name, lineno, f"#include {argument}: not found"))
                continue
            for included in found:
                _read_categories(included, resolver, cats, problems, depth + 1)
        else:
            match = re.fullmatch(r"([^=]*?)\s*=>?\s*(.*)", line)
            if match is None or not match.group(1):
                problems.append(Problem(name, lineno, f"cannot parse line: {line!r}"))
                continue
            if not cats:
                problems.append(Problem(name, lineno, "setting outside of any [section]"))
                continue
            cats[-1].items.append((match.group(1), match.group(2), name, lineno))
    if in_block:
        problems.append(Problem(name, block_start, "block comment ';--' is never closed"))


def _category_line(
    line: str, file: str, lineno: int, cats: list[_Category], problems: list[Problem]
) -> None:
    match = re.fullmatch(r"\[([^\]]*)\](?:\(([^)]*)\))?(.*)", line)
    if match is None:
        problems.append(Problem(file, lineno, f"cannot parse section header {line!r}"))
        return
    name, options, rest = match.group(1), match.group(2), match.group(3)
    if not name or name != name.strip() or re.search(r"[\s,]", name):
        problems.append(Problem(file, lineno, f"bad section name {name!r}"))
    if rest.strip():
        problems.append(Problem(file, lineno, f"text after the section header: {rest!r}"))
    cat = _Category(name, file, lineno)
    for raw_option in options.split(",") if options else []:
        option = raw_option.strip()
        if option == "!":
            cat.template = True
        elif option == "+":
            existing = next((c for c in cats if c.name.lower() == name.lower()), None)
            if existing is None:
                problems.append(
                    Problem(
                        file,
                        lineno,
                        f"[{name}](+) but no [{name}] before it: Asterisk refuses the whole file",
                    )
                )
            else:
                cats.append(existing)  # later lines append to the existing section
                return
        else:
            base = next((c for c in cats if c.name == option), None)
            if base is None:
                problems.append(Problem(file, lineno, f"template [{option}] not defined"))
            else:
                cat.items.extend(base.items)
    cats.append(cat)


def load(paths: Iterable[Path], resolver: Resolver | None = None) -> Dialplan:
    """Read ``paths`` (in order, as if each were ``#include``d) into one `Dialplan`."""
    problems: list[Problem] = []
    cats: list[_Category] = []
    paths = list(paths)
    for path in paths:
        _read_categories(path, resolver or default_resolver(path.parent), cats, problems)
    plan = Dialplan(problems=problems, files=[str(p) for p in paths])
    unique: list[_Category] = []
    for cat in cats:  # a (+) section appears twice in `cats`; read it once
        if not any(cat is seen for seen in unique):
            unique.append(cat)
    seen_special: dict[str, _Category] = {}
    for cat in unique:
        lower = cat.name.lower()
        if lower in ("globals", "general"):
            if lower in seen_special:
                first = seen_special[lower]
                plan.problems.append(
                    Problem(
                        cat.file,
                        cat.line,
                        f"second [{cat.name}] section: Asterisk reads only the first one "
                        f"({first.file}:{first.line}); these settings are ignored",
                    )
                )
                continue
            seen_special[lower] = cat
            target = plan.globals if lower == "globals" else plan.general
            for name, value, file, line in cat.items:
                if lower == "globals":
                    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                        plan.problems.append(Problem(file, line, f"bad global name {name!r}"))
                    if name in target:
                        plan.problems.append(Problem(file, line, f"global {name} set twice"))
                    plan.values.setdefault(name, set()).add(value)
                target[name] = value
        elif not cat.template:
            _load_context(plan, cat)
    for step in plan.steps():
        _collect_values(plan, step.app, step.args)
    return plan


def _collect_values(plan: Dialplan, app: str, args: str) -> None:
    if app.lower() == "set":
        name, eq, value = args.partition("=")
        name = name.lstrip("_")
        if eq and "${" not in value and "$[" not in value and re.fullmatch(r"\w+", name):
            plan.values.setdefault(name, set()).add(value)
    elif app.lower() == "execif":
        parts = separate_args(args, "?", 2)
        for call in separate_args(parts[-1], ":", 2) if len(parts) == 2 else []:
            match = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", call, re.S)
            if match:
                _collect_values(plan, match.group(1), match.group(2))


def _load_context(plan: Dialplan, cat: _Category) -> None:
    """Turn one section into extensions, like ``pbx_load_config()``."""
    ctx = plan.contexts.setdefault(cat.name, Context(cat.name))
    last_exten: str | None = None
    last_pri = -2

    def bad(file: str, line: int, message: str) -> None:
        plan.problems.append(Problem(file, line, message))

    for name, value, file, line in cat.items:
        lower = name.lower()
        if lower.startswith("same"):
            if last_exten is None:
                bad(file, line, f"'same =>' before any 'exten =>' in [{cat.name}]")
                continue
            exten, rest = last_exten, value
        elif lower == "exten":
            exten_part, rest_or_none = pbx_strsep(value)
            exten = exten_part.strip()
            if rest_or_none is None or not exten:
                bad(file, line, f"cannot parse extension line {value!r}")
                continue
            rest = rest_or_none
            last_exten = exten
        elif lower == "include":
            ctx.includes.append((value.split(",", 1)[0].strip(), file, line))
            continue
        elif lower in ("ignorepat", "switch", "lswitch", "eswitch"):
            continue
        else:
            bad(file, line, f"unknown directive {name!r} in [{cat.name}]")
            continue
        exten_name = exten.split("/", 1)[0]  # an optional /callerid match
        pri_text, comma, app_part = rest.partition(",")
        pri_text = pri_text.strip()
        label: str | None = None
        if "(" in pri_text:
            pri_text, _, label_part = pri_text.partition("(")
            if not label_part.endswith(")"):
                bad(file, line, f"label missing its closing ')': {rest!r}")
                continue
            label = label_part[:-1]
        offset = 0
        if "+" in pri_text:
            pri_text, _, plus = pri_text.partition("+")
            offset = int(plus) if plus.isdigit() else 0
        if pri_text == "hint":
            ctx.hints[exten_name] = app_part
            continue
        if pri_text in ("n", "next", "s", "same"):
            if last_pri < 0:
                bad(file, line, f"priority {pri_text!r} on the first entry of [{cat.name}]")
                continue
            priority = last_pri + 1 if pri_text in ("n", "next") else last_pri
        elif pri_text.isdigit() and int(pri_text) > 0:
            priority = int(pri_text)
        else:
            bad(file, line, f"invalid priority {pri_text!r}")
            continue
        priority += offset
        if not comma or not app_part.strip():
            bad(file, line, "no application")
            continue
        app, args, message = _split_app(app_part)
        if message:
            bad(file, line, message)  # Asterisk only warns and registers it all the same
        last_pri = priority
        steps = ctx.extens.setdefault(exten_name, {})
        if priority in steps:
            bad(
                file,
                line,
                f"priority {priority} of extension {exten_name!r} in [{cat.name}] is already "
                f"defined at {steps[priority].file}:{steps[priority].line}",
            )
            continue
        if label and any(s.label == label for s in steps.values()):
            bad(file, line, f"label {label!r} used twice in extension {exten_name!r}")
        steps[priority] = Step(cat.name, exten_name, priority, label, app, args, file, line)


def _split_app(text: str) -> tuple[str, str, str | None]:
    """Split ``App(args)`` like pbx_config: the data ends at the LAST ``)``."""
    text = text.lstrip()
    if "(" not in text:
        app, args = text.rstrip(), ""
    else:
        app, _, data = text.partition("(")
        end = data.rfind(")")
        if end < 0:
            return app, data, f"{app}: no closing parenthesis"
        if data[end + 1 :].strip():
            return app, data, f"{app}: text after the closing parenthesis: {data[end + 1 :]!r}"
        args = data[:end]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", app):
        return app, args, f"bad application name {app!r}"
    return app, args, None


def lint_files(paths: Iterable[Path], resolver: Resolver | None = None) -> list[Problem]:
    """Load ``paths`` as one dialplan and return every problem found."""
    return load(paths, resolver).lint()


# -- simulation ---------------------------------------------------------------------------


class SimulationError(Exception):
    """The dialplan did something the simulator does not model, or something invalid."""


@dataclass
class Call:
    """What the simulated channel did, application by application."""

    app: str
    args: tuple[str, ...]
    queue_prio: str = ""


@dataclass
class Run:
    """The outcome of `Simulator.run`."""

    calls: list[Call]
    ended: str  # hangup | agi-hangup | answered | fell-off
    variables: dict[str, str]

    def apps(self, *names: str) -> list[Call]:
        """The calls to the given applications, in order."""
        return [c for c in self.calls if c.app in names]


AgiHandler = Callable[[str], tuple[str, list[tuple[str, str]]]]


class _End(Exception):
    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class Simulator:
    """Run dialplan steps on a fake channel.

    ``agi(url)`` returns (AGISTATUS, variables to set); ``dial(device, timeout)`` returns
    DIALSTATUS (``ANSWER`` ends the call, as Dial() without the ``g`` option does);
    ``queue(name)`` returns QUEUESTATUS, or ``ANSWERED`` to end the call in the queue.
    """

    def __init__(
        self,
        plan: Dialplan,
        *,
        agi: AgiHandler,
        dial: Callable[[str, str], str] = lambda _device, _timeout: "NOANSWER",
        queue: Callable[[str], str] = lambda _name: "TIMEOUT",
        global_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.agi = agi
        self.dial = dial
        self.queue = queue
        self.globals = dict(plan.globals)
        self.globals.update(global_overrides or {})
        self.vars: dict[str, str] = {}
        self.calls: list[Call] = []
        self.position = ("", "", 0)
        self.stack: list[tuple[str, str, int]] = []

    # -- variables and expressions ---------------------------------------------------------

    def get(self, name: str) -> str:
        """A channel variable, else a global, else empty (as ``${name}``)."""
        name = name.lstrip("_")
        if name == "EXTEN":
            return self.position[1]
        if name == "CONTEXT":
            return self.position[0]
        return self.vars.get(name, self.globals.get(name, ""))

    def set(self, name: str, value: str) -> None:
        """``Set(name=value)``: an empty value removes the variable."""
        match = re.fullmatch(r"GLOBAL\((\w+)\)", name)
        store, name = (self.globals, match.group(1)) if match else (self.vars, name.lstrip("_"))
        if value:
            store[name] = value
        else:
            store.pop(name, None)

    def substitute(self, text: str) -> str:
        """Expand ``${...}`` and ``$[...]`` once, innermost first, like the PBX core."""
        out: list[str] = []
        i = 0
        while i < len(text):
            if text[i] == "$" and i + 1 < len(text) and text[i + 1] in "{[":
                kind = text[i + 1]
                end = find_close(text, i + 2, kind, "}" if kind == "{" else "]")
                if end < 0:
                    raise SimulationError(f"unterminated expression in {text!r}")
                inner = self.substitute(text[i + 2 : end - 1])
                out.append(self._variable(inner) if kind == "{" else evaluate(inner))
                i = end
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _variable(self, inner: str) -> str:
        name, is_function = variable_parts(inner)
        rest = inner[len(name) :]
        if is_function:
            close = find_close(rest, 1, "(", ")")
            args, rest = rest[1 : close - 1], rest[close:]
            value = self._function(name.upper(), args)
        else:
            value = self.get(name)
        if rest.startswith(":"):
            offset, _, length = rest[1:].partition(":")
            value = value[int(offset or 0) :]
            value = value[: int(length)] if length else value
        return value

    def _function(self, name: str, args: str) -> str:
        if name == "ISNULL":
            return "0" if args else "1"
        if name == "EXISTS":
            return "1" if args else "0"
        if name == "LEN":
            return str(len(args))
        if name == "FILTER":
            allowed, _, value = args.partition(",")
            chars = set()
            for lo, hi, single in re.findall(r"(.)-(.)|(.)", allowed):
                if single:
                    chars.add(single)
                else:
                    chars.update(chr(c) for c in range(ord(lo), ord(hi) + 1))
            return "".join(c for c in value if c in chars)
        if name == "CALLERID":
            return self.get(f"CALLERID({args})")
        if name == "GLOBAL":
            return self.globals.get(args, "")
        raise SimulationError(f"function {name}() is not simulated")

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        context: str,
        exten: str = "s",
        channel: Mapping[str, str] | None = None,
        max_steps: int = 500,
    ) -> Run:
        """Run from ``context,exten,1`` until the call ends; return what happened."""
        self.vars = dict(channel or {})
        self.calls = []
        self.stack = []
        self._goto(f"{context},{exten},1")
        try:
            for _ in range(max_steps):
                step = self._current()
                if step is None:
                    raise _End("fell-off")
                self.position = (self.position[0], self.position[1], step.priority + 1)
                self._exec(step.app, self.substitute(step.args))
            raise SimulationError(f"more than {max_steps} steps: a loop?")
        except _End as end:
            return Run(self.calls, end.how, dict(self.vars))

    def _current(self) -> Step | None:
        context, exten, priority = self.position
        return self.plan.contexts[context].extens[exten].get(priority)

    def _goto(self, target: str) -> None:
        parts = [p.strip() for p in target.split(",")]
        context, exten, priority = [self.position[0], self.position[1]][: 3 - len(parts)] + parts
        found = self.plan.find_exten(context, exten)
        step = self.plan.find_priority(context, exten, priority) if found else None
        if found is None or step is None:
            raise SimulationError(f"jump to missing location {target!r}")
        self.position = (found[0], found[1], step.priority)

    def _exec(self, app: str, data: str) -> None:
        """Run one application on already-substituted ``data``."""
        lower = app.lower()
        if lower in ("noop", "verbose"):
            self.calls.append(Call(app, tuple(separate_args(data, ",", 2, True))))
        elif lower == "set":
            name, eq, value = data.partition("=")
            if not eq:
                raise SimulationError(f"Set({data}) without '='")
            self.set(name.strip(), value)
        elif lower == "execif":
            self._execif(data)
        elif lower == "gotoif":
            condition, _, branches = data.partition("?")
            true, _, false = branches.partition(":")
            chosen = true if check_condition(condition) else false
            if chosen.strip():
                self._goto(chosen)
        elif lower == "goto":
            self._goto(data)
        elif lower == "gosub":
            where = data.split("(", 1)[0]
            self.stack.append(self.position)
            self._goto(where)
        elif lower == "return":
            if not self.stack:
                raise SimulationError("Return() without Gosub()")
            self.position = self.stack.pop()
        elif lower == "agi":
            self._agi(data)
        elif lower == "dial":
            args = (*separate_args(data, ",", 3, True), "", "")
            self.calls.append(Call("Dial", (args[0], args[1])))
            status = self.dial(args[0], args[1])
            if status == "ANSWER":
                raise _End("answered")
            self.set("DIALSTATUS", status)
        elif lower == "queue":
            args = (*separate_args(data, ",", 10, True), *[""] * 10)
            self.calls.append(Call("Queue", (args[0], args[4]), self.get("QUEUE_PRIO")))
            status = self.queue(args[0])
            if status == "ANSWERED":
                raise _End("answered")
            self.set("QUEUESTATUS", status)
        elif lower == "hangup":
            self.calls.append(Call("Hangup", ()))
            raise _End("hangup")
        else:
            raise SimulationError(f"application {app} is not simulated")

    def _execif(self, data: str) -> None:
        comma, question = data.find(","), data.find("?")
        if question < 0 or (0 <= comma < question):
            raise SimulationError(f"ExecIf({data}): old 'expr,App:args' syntax")
        condition, rest = separate_args(data, "?", 2)
        true, false = (*separate_args(rest, ":", 2), "")[:2]
        chosen = (true if check_condition(condition) else false).strip()
        if not chosen:
            return
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?", chosen, re.S)
        if match is None:
            raise SimulationError(f"ExecIf: cannot read {chosen!r}")
        self._exec(match.group(1), match.group(2) or "")

    def _agi(self, data: str) -> None:
        url = separate_args(data, ",", 2, True)[0]
        self.calls.append(Call("AGI", (url,)))
        status, variables = self.agi(url)
        for name, value in variables:
            self.set(name, value)
        self.set("AGISTATUS", status)
        if status == "HANGUP":
            raise _End("agi-hangup")  # AGI returns -1: the PBX stops running the dialplan


def check_condition(text: str) -> bool:
    """``pbx_checkcondition()``: empty is false, a leading integer is its value, else true."""
    text = text.strip()
    if not text:
        return False
    match = re.match(r"[+-]?\d+", text)
    return int(match.group()) != 0 if match else True


_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(!=|==|<=|>=|[=<>&|()!])|([^\s"=<>&|()!]+))')


def evaluate(expression: str) -> str:
    """Evaluate a ``$[...]`` expression: ``= == != < > <= >= & | !``, parentheses, quoted
    and bare strings. Numbers compare as numbers. Anything else raises SimulationError."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SimulationError(f"cannot evaluate $[{expression}]")
        if match.group(2):
            tokens.append(("op", match.group(2)))
        else:
            value = match.group(1) if match.group(1) is not None else match.group(3)
            tokens.append(("str", value))
        pos = match.end()
    result, rest = _parse_or(tokens)
    if rest:
        raise SimulationError(f"cannot evaluate $[{expression}]")
    return result


def _parse_or(tokens: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    left, tokens = _parse_and(tokens)
    while tokens and tokens[0] == ("op", "|"):
        right, tokens = _parse_and(tokens[1:])
        left = left if check_condition(left) and left != "" else right
    return left, tokens


def _parse_and(tokens: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    left, tokens = _parse_compare(tokens)
    while tokens and tokens[0] == ("op", "&"):
        right, tokens = _parse_compare(tokens[1:])
        left = left if check_condition(left) and check_condition(right) else "0"
    return left, tokens


def _parse_compare(tokens: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    left, tokens = _parse_unary(tokens)
    ops = {"=", "==", "!=", "<", ">", "<=", ">="}
    while tokens and tokens[0][0] == "op" and tokens[0][1] in ops:
        op = tokens[0][1]
        right, tokens = _parse_unary(tokens[1:])
        a: Any = left
        b: Any = right
        if re.fullmatch(r"[+-]?\d+(\.\d+)?", left) and re.fullmatch(r"[+-]?\d+(\.\d+)?", right):
            a, b = float(left), float(right)
        result = {
            "=": a == b,
            "==": a == b,
            "!=": a != b,
            "<": a < b,
            ">": a > b,
            "<=": a <= b,
            ">=": a >= b,
        }[op]
        left = "1" if result else "0"
    return left, tokens


def _parse_unary(tokens: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    if not tokens:
        return "", tokens
    kind, value = tokens[0]
    if (kind, value) == ("op", "!"):
        operand, rest = _parse_unary(tokens[1:])
        return ("0" if check_condition(operand) else "1"), rest
    if (kind, value) == ("op", "("):
        inner, rest = _parse_or(tokens[1:])
        if not rest or rest[0] != ("op", ")"):
            raise SimulationError("unbalanced parentheses in an expression")
        return inner, rest[1:]
    if kind == "op":
        raise SimulationError(f"unexpected {value!r} in an expression")
    return value, tokens[1:]
