"""Customers as CSV: the import and export format shared by the CLI and the REST API.

Columns, exactly (any order on import, this order on export)::

    account,customer_id,name,phone_numbers,code,destination1,destination2,destination3,
    destination4,vip,oncall

``phone_numbers`` are separated by ``;``; flags are ``1``/``0``/``true``/``false``. Every
row is checked before anything is written; a bad row is reported with its line number and
the reason, and one bad row means nothing is imported (see `parse_customers`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fastagi_router.errors import ValidationError
from fastagi_router.model import (
    DEFAULT_ACCOUNT,
    Customer,
    check_account,
    check_code,
    check_customer_id,
    check_name,
    check_token,
    parse_flag,
)
from fastagi_router.phone import NumberParser

COLUMNS = (
    "account",
    "customer_id",
    "name",
    "phone_numbers",
    "code",
    "destination1",
    "destination2",
    "destination3",
    "destination4",
    "vip",
    "oncall",
)
MAX_ROWS = 2_000_000


@dataclass(frozen=True, slots=True)
class RowError:
    """Why the row on ``line`` (1 = the header line) was refused."""

    line: int
    reason: str
    field: str | None = None


@dataclass(slots=True)
class ParsedCSV:
    """The customers read from a file, with the line each came from, and the refused rows."""

    customers: list[Customer] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _row_customer(row: dict[str, str], numbers: NumberParser) -> Customer:
    account = check_account(row["account"].strip() or DEFAULT_ACCOUNT)
    keys = []
    for raw in filter(None, (part.strip() for part in row["phone_numbers"].split(";"))):
        keys.append(numbers.parse(raw, field="phone_numbers").key)
    code = row["code"].strip() or None
    destinations = tuple(row[f"destination{n}"].strip() for n in range(1, 5))
    for n, destination in enumerate(destinations, start=1):
        if destination:
            check_token(destination, f"destination{n}")
    return Customer(
        account=account,
        customer_id=check_customer_id(row["customer_id"].strip()),
        name=check_name(row["name"].strip()),
        phone_numbers=tuple(dict.fromkeys(keys)),
        code=check_code(code) if code is not None else None,
        destinations=(destinations[0], destinations[1], destinations[2], destinations[3]),
        vip=parse_flag(row["vip"], "vip"),
        oncall=parse_flag(row["oncall"], "oncall"),
    )


def parse_customers(lines: Iterable[str], numbers: NumberParser) -> ParsedCSV:
    """Read customer rows from CSV text lines (a file opened with ``newline=""``).

    Returns every valid customer and every refused row. A row is refused when a field is
    invalid, or when its customer id, a phone number or its code repeats one of an earlier
    row of the same account. Never raises on bad content; the header is checked first and a
    wrong header is one error on line 1.
    """
    parsed = ParsedCSV()
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        parsed.errors.append(RowError(1, "the file is empty: the header line is missing"))
        return parsed
    except csv.Error as exc:
        parsed.errors.append(RowError(1, f"not CSV: {exc}"))
        return parsed
    header = [name.strip().lstrip("\ufeff") for name in header]
    if sorted(header) != sorted(COLUMNS):
        missing = [c for c in COLUMNS if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        problems = [f"missing: {','.join(missing)}"] if missing else []
        problems += [f"unknown: {','.join(unknown)}"] if unknown else []
        parsed.errors.append(
            RowError(
                1,
                f"the header must name exactly these columns: {','.join(COLUMNS)} "
                f"({'; '.join(problems) or 'a column is repeated'})",
            )
        )
        return parsed
    seen_ids: dict[tuple[str, str], int] = {}
    seen_numbers: dict[tuple[str, str], int] = {}
    seen_codes: dict[tuple[str, str], int] = {}
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.errors.append(RowError(reader.line_num, f"not CSV: {exc}"))
            break
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(COLUMNS):
            parsed.errors.append(
                RowError(line, f"{len(values)} fields where the header has {len(COLUMNS)}")
            )
            continue
        if len(parsed.customers) >= MAX_ROWS:
            parsed.errors.append(RowError(line, f"more than {MAX_ROWS} rows"))
            break
        try:
            customer = _row_customer(dict(zip(header, values, strict=True)), numbers)
        except ValidationError as exc:
            parsed.errors.append(RowError(line, exc.message, exc.field))
            continue
        error = _duplicate(customer, line, seen_ids, seen_numbers, seen_codes)
        if error is not None:
            parsed.errors.append(error)
            continue
        parsed.customers.append(customer)
        parsed.lines.append(line)
    return parsed


def _duplicate(
    customer: Customer,
    line: int,
    seen_ids: dict[tuple[str, str], int],
    seen_numbers: dict[tuple[str, str], int],
    seen_codes: dict[tuple[str, str], int],
) -> RowError | None:
    account = customer.account
    if (account, customer.customer_id) in seen_ids:
        first = seen_ids[(account, customer.customer_id)]
        return RowError(
            line, f"customer {customer.customer_id} is already on line {first}", "customer_id"
        )
    for key in customer.phone_numbers:
        if (account, key) in seen_numbers:
            first = seen_numbers[(account, key)]
            return RowError(
                line, f"{key} is already given to the customer on line {first}", "phone_numbers"
            )
    if customer.code is not None and (account, customer.code) in seen_codes:
        first = seen_codes[(account, customer.code)]
        return RowError(line, f"code {customer.code} is already used on line {first}", "code")
    seen_ids[(account, customer.customer_id)] = line
    for key in customer.phone_numbers:
        seen_numbers[(account, key)] = line
    if customer.code is not None:
        seen_codes[(account, customer.code)] = line
    return None


def format_customers(customers: Iterable[Customer]) -> Iterator[str]:
    """Yield the CSV text of ``customers``, header first, one line per item."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield flush()
    for c in customers:
        writer.writerow(
            [
                c.account,
                c.customer_id,
                c.name,
                ";".join(c.phone_numbers),
                c.code or "",
                *c.destinations,
                int(c.vip),
                int(c.oncall),
            ]
        )
        yield flush()
