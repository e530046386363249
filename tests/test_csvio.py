"""The customers CSV format: strict header, per-line errors, nothing half-read."""

from __future__ import annotations

import io

from fastagi_router.csvio import COLUMNS, format_customers, parse_customers
from fastagi_router.phone import NumberParser

HEADER = ",".join(COLUMNS)
NUMBERS = NumberParser("VN")


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_customers(io.StringIO(text, newline=""), NUMBERS)


def test_good_file() -> None:
    parsed = parse(
        HEADER + "\n"
        "default,C1,ACME,0899990988;+84899990977,1234,207,209,214,216,1,0\n"
        'CL0000,C2,"Beta, Inc.",0033123456789,,300,,,,false,true\n'
    )
    assert parsed.errors == []
    acme, beta = parsed.customers
    assert acme.phone_numbers == ("+84899990988", "+84899990977")
    assert acme.vip and not acme.oncall
    assert beta.name == "Beta, Inc." and beta.code is None and beta.oncall
    assert beta.destinations == ("300", "", "", "")
    assert parsed.lines == [2, 3]


def test_columns_in_any_order_and_bom() -> None:
    cols = list(reversed(COLUMNS))
    row = {c: "" for c in cols} | {"customer_id": "C1", "vip": "0", "oncall": "0"}
    parsed = parse("\ufeff" + ",".join(cols) + "\n" + ",".join(row[c] for c in cols) + "\n")
    assert parsed.errors == []
    assert parsed.customers[0].account == "default"


def test_wrong_header_is_one_error() -> None:
    parsed = parse("account,customer_id,name\nx,y,z\n")
    assert len(parsed.errors) == 1
    assert parsed.errors[0].line == 1
    assert "missing: phone_numbers" in parsed.errors[0].reason


def test_bad_rows_are_reported_with_their_line() -> None:
    parsed = parse(
        HEADER + "\n"
        "default,C1,A,0899990988,1,q,,,,1,0\n"
        "default,C2,B,not-a-number,,q,,,,0,0\n"
        "default,C3,C,,,q&evil,,,,0,0\n"
        "default,C4,D,,,q,,,,maybe,0\n"
        "default,C1,E,,,q,,,,0,0\n"
        "default,C6,F,+84899990988,,q,,,,0,0\n"
        "default,C7,G,,1,q,,,,0,0\n"
        "default,C8,H,,12a,q,,,,0,0\n"
        "default,C9,I\n"
        "bad account,C10,J,,,q,,,,0,0\n"
    )
    lines = {e.line: e for e in parsed.errors}
    assert set(lines) == {3, 4, 5, 6, 7, 8, 9, 10, 11}
    assert lines[3].field == "phone_numbers"
    assert lines[4].field == "destination1"
    assert lines[5].field == "vip"
    assert "line 2" in lines[6].reason
    assert lines[7].field == "phone_numbers"
    assert lines[8].field == "code"
    assert lines[9].field == "code"
    assert "fields" in lines[10].reason
    assert lines[11].field == "account"


def test_empty_file() -> None:
    parsed = parse("")
    assert parsed.errors[0].line == 1


def test_export_round_trips() -> None:
    parsed = parse(HEADER + '\ndefault,C1,"A ""quoted"" name",0899990988,12,207,,,,1,1\n')
    text = "".join(format_customers(parsed.customers))
    again = parse(text)
    assert again.customers == parsed.customers
    assert text.splitlines()[0] == HEADER
