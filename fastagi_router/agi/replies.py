"""Parsing of Asterisk's reply lines, as res_agi.c writes them.

The shapes, from the recordings and from res_agi.c::

    200 result=1 (0899990988)        GET VARIABLE: value in parentheses, may hold ( ) and quotes
    200 result=0                     most commands
    200 result=                      GET DATA ended at once with no digits
    200 result=1234 (timeout)        GET DATA timed out; the digits may be empty or partial
    200 result=0 endpos=3520         STREAM FILE, and trailing key=value pairs in general
    200 result=0 (timeout) endpos=0  RECORD FILE: data, then pairs
    100 result=0 Trying...           interim (GOSUB); the final reply follows
    503 result=-2 Memory allocation failure
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520 Invalid command syntax.  Proper usage not available.
    520-Invalid command syntax.  Proper usage follows:   ... lines ...   520 End of proper usage.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from fastagi_router.agi.events import Reply
from fastagi_router.errors import RemoteProtocolError

_STATUS = re.compile(r"([1-5][0-9][0-9])([ -]|$)(.*)", re.DOTALL)
_PAIRS = re.compile(r"(?: [A-Za-z_][A-Za-z0-9_]*=\S*)+")
_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")
_DATA_THEN_PAIRS = re.compile(r"\((.*)\)((?: [A-Za-z_][A-Za-z0-9_]*=\S*)+)", re.DOTALL)

USAGE_END = "520 End of proper usage."


def is_usage_start(line: str) -> bool:
    """True when ``line`` opens a multi-line usage reply (``520-``)."""
    return line.startswith("520-")


def parse_reply(line: str) -> Reply:
    """Parse one single-line reply (the newline already removed).

    Returns a `Reply`. Raises `RemoteProtocolError` when the line does not start with a
    three-digit status code, which no Asterisk reply lacks.
    """
    common = _COMMON.get(line)
    if common is not None:
        return common
    match = _STATUS.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(f"not a FastAGI reply: {line[:80]!r}")
    code = int(match.group(1))
    rest = match.group(3)
    if not rest.startswith("result="):
        return Reply(code=code, text=line)
    body = rest[len("result=") :]
    result, sep, tail = body.partition(" ")
    if not sep:
        return Reply(code=code, result=result, text=line)
    data: str | None = None
    extra: dict[str, str] = {}
    if tail.startswith("("):
        if tail.endswith(")"):
            data = tail[1:-1]
        else:
            both = _DATA_THEN_PAIRS.fullmatch(tail)
            if both is not None:
                data = both.group(1)
                extra = dict(_PAIR.findall(both.group(2)))
    elif _PAIRS.fullmatch(" " + tail):
        extra = dict(_PAIR.findall(tail))
    return Reply(
        code=code,
        result=result,
        data=data,
        extra=MappingProxyType(extra),
        text=line,
    )


#: The replies nearly every call reads (SET VARIABLE, EXEC MSet, ANSWER...), parsed once:
#: a `Reply` is frozen, so the same one may be handed out for every such line.
_COMMON: dict[str, Reply] = {}
_COMMON.update(
    (line, parse_reply(line)) for line in ("200 result=0", "200 result=1", "200 result=-1")
)
#: The same, by the bytes of the line as Asterisk sends it (newline included).
COMMON_REPLY_LINES: dict[bytes, Reply] = {
    f"{line}\n".encode(): reply for line, reply in _COMMON.items()
}
