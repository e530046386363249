"""Caller-number normalisation."""

from __future__ import annotations

import pytest

from fastagi_router.errors import ValidationError
from fastagi_router.phone import NumberParser

VN = NumberParser("VN")


@pytest.mark.parametrize(
    "raw",
    [
        "0899990988",
        "84899990988",
        "+84899990988",
        "0084899990988",
        " 089 999 0988 ",
        "+84 89-999-0988",
    ],
)
def test_one_caller_one_key(raw: str) -> None:
    number = VN.caller(raw)
    assert number is not None
    assert number.key == number.e164 == "+84899990988"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "anonymous",
        "Anonymous",
        "unknown",
        "<unknown>",
        "private",
        "Restricted",
        "withheld",
        "abc",
    ],
)
def test_withheld_numbers_have_no_key(raw: str) -> None:
    assert VN.caller(raw) is None


def test_international_numbers_from_another_region() -> None:
    number = VN.caller("0033123456789")
    assert number is not None and number.e164 == "+33123456789"
    fr = NumberParser("fr")
    assert fr.region == "FR"
    french = fr.caller("0123456789")
    assert french is not None and french.e164 == "+33123456789"


def test_short_numbers_keep_their_digits() -> None:
    number = VN.caller("104")
    assert number is not None
    assert number.e164 is None
    assert number.key == "104"


def test_parse_refuses_what_is_not_a_number() -> None:
    with pytest.raises(ValidationError) as err:
        VN.parse("call me", field="phone_number")
    assert err.value.field == "phone_number"
    with pytest.raises(ValidationError):
        VN.parse("anonymous")
    assert VN.parse("+84 899 990 988").key == "+84899990988"


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValidationError, match="region"):
        NumberParser("XX")


@pytest.mark.parametrize("space", ["\t", "\n", "\r", "\u2009", "\u202f", "\u00a0", "  "])
def test_any_whitespace_between_digits_is_one_number(space: str) -> None:
    # A tab, a line break or a thin space used to make libphonenumber give up, and the
    # number was stored under its bare digits, a key no caller ever matches.
    assert VN.parse(f"0899{space}990988").key == "+84899990988"
