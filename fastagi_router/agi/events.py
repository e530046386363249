"""What the FastAGI connection reports: frozen values, built only by the parser."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ARG_PARAM = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]{0,63})=(.*)", re.DOTALL)


class NeedData(enum.Enum):
    """Sentinel: `AGIConnection.next_event` needs more bytes before it can say more."""

    NEED_DATA = "need-data"


NEED_DATA = NeedData.NEED_DATA


# The one-pass parser's grammar, written once: a plain name, a colon, one space, a value.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``agi_arg_N``: ASCII digits without a leading zero, few enough for ``int()`` (a name such
#: as ``agi_arg_\u00b2`` or ``agi_arg_01`` is an ordinary variable).
_ARG = r"agi_arg_(0|[1-9][0-9]{0,8})"
#: One header line as the one-pass parser reads it.
HEADER_LINE = re.compile(rf"^({_NAME}): (.*)$", re.MULTILINE)
#: A whole header block of such lines (without its final empty line). Possessive: no
#: character a repeat takes could start what follows it, so nothing is worth trying again.
HEADER_BLOCK = re.compile(rf"(?:{_NAME}+: [^\n]*+\n)*+{_NAME}+: [^\n]*+")
ARG_NAME = re.compile(_ARG)
#: The `HEADER_LINE`s whose name is an `ARG_NAME`.
ARG_LINE = re.compile(rf"^{_ARG}: (.*)$", re.MULTILINE)


class AGIRequest:
    """The header block Asterisk sends when a FastAGI session opens.

    ``variables`` holds every ``agi_*`` line except the ``agi_arg_N`` ones, which are in
    ``args`` in order. Values are text decoded leniently: bytes that are not UTF-8 become
    U+FFFD rather than an error.

    A request is a value: immutable, equal to another with the same variables and
    arguments. The parser builds it from the variables, or, for a block that came whole
    and matches `HEADER_BLOCK`, from the block's text (`from_block`): the few variables a
    call needs are then found in the text, and the mapping is built only if asked for.
    """

    __slots__ = ("_text", "_variables", "args")

    _text: str | None
    _variables: Mapping[str, str] | None
    args: tuple[str, ...]

    def __init__(self, variables: Mapping[str, str] = _EMPTY, args: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_text", None)
        object.__setattr__(self, "_variables", variables)
        object.__setattr__(self, "args", args)

    @classmethod
    def from_block(cls, text: str, args: tuple[str, ...]) -> AGIRequest:
        """The request for ``text``, a header block matching `HEADER_BLOCK`, whose
        ``agi_arg_N`` lines gave ``args``."""
        request = cls.__new__(cls)
        object.__setattr__(request, "_text", "\n" + text)
        object.__setattr__(request, "_variables", None)
        object.__setattr__(request, "args", args)
        return request

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an AGIRequest is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"an AGIRequest is immutable: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AGIRequest):
            return NotImplemented
        return self.args == other.args and dict(self.variables) == dict(other.variables)

    __hash__ = None  # type: ignore[assignment]  # a mapping inside: not hashable

    def __repr__(self) -> str:
        return f"AGIRequest(variables={dict(self.variables)!r}, args={self.args!r})"

    def __reduce__(self) -> tuple[object, tuple[dict[str, str], tuple[str, ...]]]:
        # copy and pickle rebuild the value from its variables and arguments.
        return _rebuilt, (dict(self.variables), self.args)

    @property
    def variables(self) -> Mapping[str, str]:
        """Every variable of the header block but the arguments, by name."""
        variables = self._variables
        if variables is None:
            assert self._text is not None
            found = dict(HEADER_LINE.findall(self._text))
            for name in [n for n in found if n.startswith("agi_arg_")]:
                if ARG_NAME.fullmatch(name):
                    del found[name]
            variables = MappingProxyType(found)
            object.__setattr__(self, "_variables", variables)
        return variables

    def _value(self, key: str) -> str | None:
        """The value of variable ``key`` (the last line of that name), or None."""
        text = self._text
        if text is None:
            return self.variables.get(key)
        # Every line starts after a newline (one is put before the first): the last line
        # named ``key`` is the last "\n<key>: ", and a value holds no newline.
        at = text.rfind(f"\n{key}: ")
        if at < 0:
            return None
        start = at + len(key) + 3
        end = text.find("\n", start)
        return text[start:] if end < 0 else text[start:end]

    def get(self, name: str, default: str = "") -> str:
        """Return the value of ``agi_<name>`` (or of ``name`` if it already has the prefix)."""
        key = name if name.startswith("agi_") else "agi_" + name
        return self.variables.get(key, default)

    @property
    def network_script(self) -> str | None:
        """The ``agi_network_script`` line (path and query string), or None when absent."""
        return self._value("agi_network_script")

    @property
    def script(self) -> str | None:
        """The script name: the path of the AGI URL without query string or slashes, or None."""
        raw = self.network_script
        return None if raw is None else _script(raw)

    @property
    def query(self) -> Mapping[str, str]:
        """Parameters from the query string of the AGI URL; the first of a repeated name wins."""
        raw = self.network_script
        if raw is None or "?" not in raw:
            return _EMPTY
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw.split("?", 1)[1], keep_blank_values=True):
            params.setdefault(key, value)
        return MappingProxyType(params)

    def parameters(self) -> Mapping[str, str]:
        """Merge ``key=value`` AGI arguments with the query string; the query string wins."""
        return _parameters(self.network_script, self.args)

    @property
    def callerid(self) -> str:
        """``agi_callerid``: the caller number, ``unknown`` or ``anonymous`` when not given."""
        return self._value("agi_callerid") or ""

    @property
    def uniqueid(self) -> str:
        """``agi_uniqueid``, the channel's unique id, for logs."""
        return self._value("agi_uniqueid") or ""


def _rebuilt(variables: dict[str, str], args: tuple[str, ...]) -> AGIRequest:
    return AGIRequest(MappingProxyType(variables), args)


@functools.lru_cache(maxsize=1024)
def _script(network_script: str) -> str:
    return network_script.split("?", 1)[0].strip("/")


@functools.lru_cache(maxsize=1024)
def _parameters(network_script: str | None, args: tuple[str, ...]) -> Mapping[str, str]:
    # A dialplan sends the same few URLs over and over: parse each once.
    merged: dict[str, str] = {}
    for arg in args:
        match = _ARG_PARAM.fullmatch(arg)
        if match:
            merged.setdefault(match.group(1), match.group(2))
    if network_script is not None and "?" in network_script:
        query: dict[str, str] = {}
        for key, value in parse_qsl(network_script.split("?", 1)[1], keep_blank_values=True):
            query.setdefault(key, value)
        merged.update(query)
    return MappingProxyType(merged)


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply from Asterisk to one command.

    ``code`` is the three-digit status (200 success, 100 interim, 503, 510 unknown command,
    511 not permitted on a dead channel, 520 usage). ``result`` is the text after
    ``result=`` (kept as text: GET DATA digits may have leading zeros, ``*`` or ``#``), or
    None when the line has no ``result=``. ``data`` is the text in parentheses after it, if
    any (``timeout``, a variable's value). ``extra`` holds trailing ``key=value`` pairs such as
    ``endpos``. ``text`` is the reply as received (every line of a 520 block).
    """

    code: int
    result: str | None = None
    data: str | None = None
    extra: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    text: str = ""

    @property
    def ok(self) -> bool:
        """True for a 200 reply."""
        return self.code == 200

    @property
    def interim(self) -> bool:
        """True for ``100 Trying``: the final reply to the same command is still to come."""
        return self.code == 100

    @property
    def result_int(self) -> int | None:
        """``result`` as an integer, or None when it is absent or not a number."""
        if self.result is None:
            return None
        try:
            return int(self.result)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """Asterisk's unsolicited ``HANGUP`` line: the caller has gone. Replies still follow."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side. ``state`` names where the conversation was; ``unparsed``
    counts the bytes of an incomplete line that was pending at that moment."""

    state: str
    unparsed: int = 0


Event = AGIRequest | Reply | HangupNotice | ConnectionClosed
