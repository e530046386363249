"""Caller numbers: one key per caller however the network wrote the number.

``0899990988``, ``84899990988``, ``+84899990988`` and ``0084899990988`` (default region VN)
all become ``+84899990988``. A number that the numbering plan does not make possible (an
internal extension such as ``104``) keeps its dialable characters as its key, so it still
matches itself. Withheld numbers (``anonymous``, ``unknown``, empty, ...) have no key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers

from fastagi_router.errors import ValidationError

#: What Asterisk and SIP peers write when the caller's number is not available.
WITHHELD = frozenset(
    {
        "",
        "anonymous",
        "unknown",
        "unavailable",
        "private",
        "restricted",
        "withheld",
        "<unknown>",
        "asterisk",
    }
)
_DIALABLE = re.compile(r"[^0-9*#+]")
#: Any run of whitespace: libphonenumber reads spaces and no-break spaces between digits, but
#: not a tab, a line break or a thin space (French numbers are written with U+202F).
_SPACES = re.compile(r"\s+")
_MAX_LEN = 32
#: Caller values up to this long are remembered (65,536 of them): a caller calls again, and
#: parsing costs microseconds on every call. Longer ones are parsed each time, so that no
#: peer can fill the cache with large strings.
_CACHED_LEN = 64


@dataclass(frozen=True, slots=True)
class CallerNumber:
    """A caller number: ``key`` is what the store is indexed by (E.164 when the number parses
    as a possible number, else the dialable characters received); ``e164`` is None when it
    did not parse; ``raw`` is the text as received."""

    key: str
    e164: str | None
    raw: str


class NumberParser:
    """Normalises numbers for one default region (ISO 3166 code such as ``VN`` or ``FR``)."""

    def __init__(self, default_region: str) -> None:
        region = default_region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(
                f"unknown region {default_region!r}: use an ISO 3166 code such as VN or FR",
                field="default_region",
            )
        self.region = region
        self._caller = functools.lru_cache(maxsize=65536)(self._caller_uncached)

    def caller(self, raw: str) -> CallerNumber | None:
        """Return the caller's number, or None when it is withheld or holds no digit."""
        if len(raw) > _CACHED_LEN:
            return self._caller_uncached(raw)  # not a number anyone calls from twice
        return self._caller(raw)

    def _caller_uncached(self, raw: str) -> CallerNumber | None:
        text = _SPACES.sub(" ", raw.strip())
        if text.lower() in WITHHELD:
            return None
        return self._parse(text)

    def parse(self, raw: str, *, field: str = "phone_number") -> CallerNumber:
        """Return the number for a value typed by a user (CLI, CSV, API).

        Raises `ValidationError` naming ``field`` when it is withheld, empty or no phone number.
        """
        number = self.caller(raw) if _looks_like_number(raw) else None
        if number is None:
            raise ValidationError(f"{raw[:40]!r} is not a phone number", field=field)
        return number

    def spellings(self, number: CallerNumber) -> tuple[str, ...]:
        """Return every form of ``number`` a record may hold: its key first, then, for an
        E.164 number, ``84899990988``, ``0084899990988`` and the national ``0899990988``
        (region VN), so that an erasure finds it however it was written."""
        forms = [number.key]
        if number.e164 is not None:
            digits = number.e164[1:]
            forms += [digits, "00" + digits]
            parsed = phonenumbers.parse(number.e164, None)
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            forms.append(_DIALABLE.sub("", national))
        return tuple(dict.fromkeys(f for f in forms if f))

    def _parse(self, text: str) -> CallerNumber | None:
        digits = _DIALABLE.sub("", text)[:_MAX_LEN]
        if not digits.lstrip("+"):
            return None
        try:
            parsed = phonenumbers.parse(text, self.region)
        except phonenumbers.NumberParseException:
            return CallerNumber(key=digits, e164=None, raw=text)
        if not phonenumbers.is_possible_number(parsed):
            return CallerNumber(key=digits, e164=None, raw=text)
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        return CallerNumber(key=e164, e164=e164, raw=text)


_PUNCTUATION = re.compile(r"[\s().\-/]")


def _looks_like_number(raw: str) -> bool:
    """True for text made of digits with usual punctuation (``+33 1 23-45``), nothing else."""
    return re.fullmatch(r"\+?[0-9*#]{1,32}", _PUNCTUATION.sub("", raw.strip())) is not None
