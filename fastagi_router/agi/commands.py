"""Building AGI command lines that Asterisk reads back exactly as meant.

Asterisk splits a command line into words with ``parse_args()`` (res_agi.c): spaces and tabs
separate words outside double quotes, a backslash makes the next character literal, and the
quotes themselves are dropped. So any text can travel as one word by wrapping it in quotes
and escaping ``\\`` and ``"`` -- except CR, LF and NUL, which end the line (or the string)
before ``parse_args()`` sees them, and which no escape can carry. Those are refused here.

Asterisk reads a command into an 8192-byte buffer; a longer line is executed as two commands.
Every line built here, newline included, is shorter than that or is refused.

``EXEC MSet a=1,b=2`` sets many variables in one round trip, but MSet splits its data on
``,`` and ``=``, groups by ``()`` ``[]`` and quotes, strips quotes and backslashes, keeps at most
24 pairs, and (with ``AGIEXECFULL``) substitutes ``${...}`` and ``$[...]``. It is only used
for names and values made of the characters in `MSET_SAFE`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from fastagi_router.errors import LocalProtocolError

#: Asterisk's AGI_BUF_LEN: a command line (newline included) must be shorter than this.
AGI_BUF_LEN = 8192
#: MSet takes at most this many name=value pairs (AST_APP_ARG(vars)[24] in pbx_builtins).
MSET_MAX_PAIRS = 24

_UNSENDABLE = re.compile(r"[\r\n\x00]")
_RAW_WORD = re.compile(r"[^\s\"\\\x00]+")
_VARIABLE_NAME = re.compile(r"_{0,2}[A-Za-z0-9_]+(?:\([^\s\"\\()]*\))?")
_APPLICATION = re.compile(r"[A-Za-z0-9_]+")
_DIGITS = re.compile(r"[0-9*#]*")
MSET_SAFE = re.compile(r"[A-Za-z0-9_.+*#@/:-]*")
_MSET_NAME = re.compile(r"_{0,2}[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Command:
    """One AGI command line, checked and ready to send.

    ``channel_time`` marks commands whose reply waits on the channel rather than on the
    router: media playing, the caller typing, the channel being answered. The router does
    not count that wait against its own deadline, and must not send anything during it.
    """

    line: str
    channel_time: bool = False
    #: The line on the wire, newline included (computed once, when the command is built).
    data: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if _UNSENDABLE.search(self.line):
            raise LocalProtocolError("an AGI command cannot carry CR, LF or NUL")
        try:
            data = (self.line + "\n").encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from JSON "\ud800"
            raise LocalProtocolError("an AGI command must be valid Unicode text") from exc
        object.__setattr__(self, "data", data)
        if len(data) >= AGI_BUF_LEN:
            raise LocalProtocolError(
                f"an AGI command line must be shorter than {AGI_BUF_LEN} bytes "
                "(Asterisk would run the rest as a second command)"
            )

    @property
    def verb(self) -> str:
        """The command without its arguments (``SET VARIABLE``, ``EXEC MSet``), for logs."""
        words = self.line.split(" ")
        for size in (3, 2):
            head = " ".join(words[:size])
            if head.upper() in _MULTI_WORD_VERBS:
                return head.upper()
        if words[0].upper() == "EXEC" and len(words) > 1:
            return "EXEC " + words[1]
        return words[0].upper()

    def encode(self) -> bytes:
        """Return the line as bytes on the wire, newline included."""
        return self.data


_MULTI_WORD_VERBS = frozenset(
    {
        "GET VARIABLE",
        "SET VARIABLE",
        "GET FULL VARIABLE",
        "GET DATA",
        "STREAM FILE",
        "SAY DIGITS",
        "CHANNEL STATUS",
        "WAIT FOR DIGIT",
    }
)


def quote(value: str) -> str:
    """Return ``value`` as one double-quoted AGI word that ``parse_args()`` reads back as is.

    Raises `LocalProtocolError` when ``value`` holds CR, LF or NUL.
    """
    if _UNSENDABLE.search(value):
        raise LocalProtocolError("a value with CR, LF or NUL cannot be sent to Asterisk")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def word(value: str) -> str:
    """Return ``value`` bare when it is one plain word, else quoted (see `quote`)."""
    if _RAW_WORD.fullmatch(value):
        return value
    return quote(value)


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise LocalProtocolError(f"{what} {value[:64]!r} is not acceptable in an AGI command")
    return value


@functools.lru_cache(maxsize=1024)
def _mset_name(name: str) -> str:
    # Variable names are a handful of constants: check each once.
    return _checked(_MSET_NAME, name, "MSet variable name")


def _non_negative(value: int, what: str) -> int:
    if value < 0:
        raise LocalProtocolError(f"{what} must not be negative")
    return value


def raw(line: str) -> Command:
    """Return a command sent exactly as given (still refused with CR/LF/NUL or 8 KiB)."""
    return Command(line)


def answer() -> Command:
    """``ANSWER``: answer the channel. Replies ``200 result=0`` (or -1 on failure)."""
    return Command("ANSWER", channel_time=True)


def noop() -> Command:
    """``NOOP``: does nothing; replies ``200 result=0``."""
    return Command("NOOP")


def channel_status() -> Command:
    """``CHANNEL STATUS``: replies ``200 result=<state>`` (6 = up)."""
    return Command("CHANNEL STATUS")


def verbose(message: str, level: int = 1) -> Command:
    """``VERBOSE "message" level``: writes to Asterisk's console log."""
    return Command(f"VERBOSE {quote(message)} {_non_negative(level, 'level')}")


def get_variable(name: str) -> Command:
    """``GET VARIABLE name``: replies ``200 result=1 (value)`` or ``200 result=0`` if unset."""
    return Command("GET VARIABLE " + _checked(_VARIABLE_NAME, name, "variable name"))


def get_full_variable(expression: str) -> Command:
    """``GET FULL VARIABLE expr``: Asterisk substitutes ``${...}`` in ``expr`` and replies
    ``200 result=1 (text)``."""
    return Command("GET FULL VARIABLE " + word(expression))


def set_variable(name: str, value: str) -> Command:
    """``SET VARIABLE name "value"``: the value is stored as is, whatever it holds."""
    return Command(f"SET VARIABLE {_checked(_VARIABLE_NAME, name, 'variable name')} {quote(value)}")


def exec_app(application: str, data: str = "") -> Command:
    """``EXEC app data``: runs a dialplan application; ``data`` travels as one word."""
    app = _checked(_APPLICATION, application, "application name")
    return Command(f"EXEC {app} {word(data)}" if data else f"EXEC {app}")


def mset_safe(value: str) -> bool:
    """True when ``value`` can travel inside ``EXEC MSet`` unchanged (see module docstring)."""
    return MSET_SAFE.fullmatch(value) is not None


def mset(pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> Command:
    """``EXEC MSet n1=v1,n2=v2,...``: sets up to 24 variables in one round trip.

    Raises `LocalProtocolError` when a name or value is not MSet-safe or there are too many
    pairs; such values go through `set_variable` instead.
    """
    for name, value in pairs:
        if not mset_safe(value):
            raise LocalProtocolError(f"value of {name} is not safe inside MSet")
    return _mset(pairs)


def _mset(pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> Command:
    """`mset` for values already known to be MSet-safe."""
    if not pairs:
        raise LocalProtocolError("MSet needs at least one pair")
    if len(pairs) > MSET_MAX_PAIRS:
        raise LocalProtocolError(f"MSet takes at most {MSET_MAX_PAIRS} pairs")
    return Command("EXEC MSet " + ",".join(f"{_mset_name(n)}={v}" for n, v in pairs))


def get_data(file: str, timeout_ms: int, max_digits: int) -> Command:
    """``GET DATA file timeout max``: plays ``file`` and collects DTMF.

    Replies ``200 result=<digits>`` when the caller ends input, ``200 result=<digits>
    (timeout)`` on timeout, ``200 result=-1`` on hang-up.
    """
    return Command(
        f"GET DATA {_checked(_RAW_WORD, file, 'sound file')} "
        f"{_non_negative(timeout_ms, 'timeout')} {_non_negative(max_digits, 'max digits')}",
        channel_time=True,
    )


def stream_file(file: str, escape_digits: str = "") -> Command:
    """``STREAM FILE file "escape"``: replies ``200 result=<digit or 0> endpos=<n>``."""
    escape = _checked(_DIGITS, escape_digits, "escape digits")
    return Command(
        f"STREAM FILE {_checked(_RAW_WORD, file, 'sound file')} {quote(escape)}",
        channel_time=True,
    )


def wait_for_digit(timeout_ms: int) -> Command:
    """``WAIT FOR DIGIT timeout``: replies ``200 result=<ascii code or 0>``."""
    return Command(f"WAIT FOR DIGIT {int(timeout_ms)}", channel_time=True)


def say_digits(digits: str, escape_digits: str = "") -> Command:
    """``SAY DIGITS digits "escape"``: reads the digits out."""
    return Command(
        f"SAY DIGITS {_checked(_DIGITS, digits, 'digits')} "
        f"{quote(_checked(_DIGITS, escape_digits, 'escape digits'))}",
        channel_time=True,
    )


def without_mset(
    command: Command, result: str | None, variables: list[tuple[str, str]]
) -> list[Command] | None:
    """What to send next when ``command``, one of `set_variables` for ``variables``, got
    ``result``: if it was the MSet and Asterisk has no MSet (``result=-2``), every variable
    again one by one, the last one last; else None, and the rest goes out as it was."""
    if result == "-2" and command.line.startswith("EXEC MSet "):
        return [set_variable(name, value) for name, value in variables]
    return None


def set_variables(variables: list[tuple[str, str]]) -> list[Command]:
    """Return the commands that set ``variables`` in as few round trips as is safe.

    Values that cannot travel inside MSet get their own ``SET VARIABLE``, sent first; the
    rest go in one ``EXEC MSet`` that always carries the last variable, so the last one is
    set last whatever the values hold (a dialplan reading it then sees all the others).
    Raises `LocalProtocolError` for a value no command can carry (CR, LF, NUL).
    """
    return list(_set_variables(tuple(variables)))


@functools.lru_cache(maxsize=4096)
def _set_variables(variables: tuple[tuple[str, str], ...]) -> tuple[Command, ...]:
    # The same few answers go out again and again (one per known caller): build each once.
    return tuple(_build_set_variables(variables))


def _build_set_variables(variables: tuple[tuple[str, str], ...]) -> list[Command]:
    if 0 < len(variables) <= MSET_MAX_PAIRS and mset_safe("".join(v for _, v in variables)):
        # The usual answer: every value plain, all in one MSet (names checked once each).
        names = tuple(n for n, _ in variables)
        _mset_names(names)
        return [Command("EXEC MSet " + ",".join([f"{n}={v}" for n, v in variables]))]
    *rest, last = variables
    sent: list[Command] = []
    together: list[tuple[str, str]] = []
    for name, value in rest:
        if mset_safe(value):
            together.append((name, value))
        else:
            sent.append(set_variable(name, value))
    groups = [together[i : i + MSET_MAX_PAIRS] for i in range(0, len(together), MSET_MAX_PAIRS)]
    if not mset_safe(last[1]):
        return [*sent, *(_mset(g) for g in groups), set_variable(*last)]
    if groups and len(groups[-1]) < MSET_MAX_PAIRS:
        groups[-1].append(last)
    else:
        groups.append([last])
    return [*sent, *(_mset(g) for g in groups)]


@functools.lru_cache(maxsize=256)
def _mset_names(names: tuple[str, ...]) -> None:
    for name in names:
        _mset_name(name)
