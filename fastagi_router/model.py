"""The records the router keeps, validated when built.

Agent extensions and destination queues end up inside ``Dial()`` and ``Queue()`` in the
dialplan, where ``,`` ``|`` ``&`` ``(`` ``)`` and ``${`` change what the application does.
They must be plain dialplan tokens (`check_token`); that rule is the same for the CLI, the
CSV import, the REST API and the upstream API, and it is checked here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastagi_router.errors import ValidationError

DEFAULT_ACCOUNT = "default"
MAX_DESTINATIONS = 4

_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@/+-]{0,79}")
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_CODE = re.compile(r"[0-9*]{1,32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = frozenset({"1", "true", "yes", "y", "on", "oui", "vrai"})
_FALSE = frozenset({"0", "false", "no", "n", "off", "non", "faux", ""})
MAX_NAME = 200


def check_account(value: str, field: str = "account") -> str:
    """Return ``value`` if it is an account name (letters, digits, ``_.-``, up to 64)."""
    if not _ACCOUNT.fullmatch(value):
        raise ValidationError(
            f"{value[:40]!r} is not an account name (letters, digits, '_', '.', '-'; 1-64)",
            field=field,
        )
    return value


def check_token(value: str, field: str) -> str:
    """Return ``value`` if it is safe inside a dialplan application argument.

    Letters, digits and ``_ . @ / + -``, starting with a letter or digit, up to 80
    characters: nothing that ``Dial()``/``Queue()`` split on (``, | &``), no parentheses, no
    ``$``, no quotes, no spaces, no control characters. Raises `ValidationError` naming
    ``field`` otherwise.
    """
    if not _TOKEN.fullmatch(value):
        bad = sorted({c for c in value if not re.fullmatch(r"[A-Za-z0-9_.@/+-]", c)})
        why = f"characters not allowed: {''.join(bad)!r}" if bad else "empty or too long"
        raise ValidationError(
            f"{field} must be a plain dialplan token "
            f"(letters, digits, '_', '.', '@', '/', '+', '-'; up to 80): {why}",
            field=field,
        )
    return value


def check_customer_id(value: str, field: str = "customer_id") -> str:
    """Return ``value`` if it is a customer id (letters, digits, ``_.:-``, up to 64)."""
    if not _CUSTOMER_ID.fullmatch(value):
        raise ValidationError(
            f"{value[:40]!r} is not a customer id (letters, digits, '_', '.', ':', '-'; 1-64)",
            field=field,
        )
    return value


def check_code(value: str, field: str = "code") -> str:
    """Return ``value`` if it is an identification code a keypad can type (digits and ``*``)."""
    if not _CODE.fullmatch(value):
        raise ValidationError("a code is 1 to 32 keypad digits (0-9 and *)", field=field)
    return value


def check_name(value: str, field: str = "name") -> str:
    """Return ``value`` if it is printable text of at most 200 characters."""
    if len(value) > MAX_NAME or _CONTROL.search(value):
        raise ValidationError(
            f"{field} must be at most {MAX_NAME} characters with no control characters",
            field=field,
        )
    return value


def parse_flag(value: str, field: str) -> bool:
    """Read ``1/0``, ``true/false``, ``yes/no`` (and ``oui/non``) as a boolean."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError(f"{field} must be 1/0 or true/false, not {value[:20]!r}", field=field)


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer of one account.

    ``phone_numbers`` are normalised keys (see `fastagi_router.phone`). ``destinations`` has
    exactly four slots, ``""`` where unused, in the order the dialplan tries them.
    """

    account: str
    customer_id: str
    name: str = ""
    phone_numbers: tuple[str, ...] = ()
    code: str | None = None
    destinations: tuple[str, str, str, str] = ("", "", "", "")
    vip: bool = False
    oncall: bool = False

    def __post_init__(self) -> None:
        check_account(self.account)
        check_customer_id(self.customer_id)
        check_name(self.name)
        if self.code is not None:
            check_code(self.code)
        if len(self.destinations) != MAX_DESTINATIONS:
            raise ValidationError("a customer has exactly four destination slots")
        for slot, destination in enumerate(self.destinations, start=1):
            if destination:
                check_token(destination, f"destination{slot}")
        if len(set(self.phone_numbers)) != len(self.phone_numbers):
            raise ValidationError("a phone number is listed twice", field="phone_numbers")


@dataclass(frozen=True, slots=True)
class Route:
    """A sticky-agent entry: calls from ``number_key`` in ``account`` go to ``agent`` first.

    ``phone_number`` is the number as it was given, ``number_key`` its normalised form.
    ``origin`` is ``manual`` (CLI, API) or ``learned`` (Manager events).
    """

    account: str
    phone_number: str
    number_key: str
    agent: str
    description: str = ""
    origin: str = "manual"
    id: int | None = None
    created_at: str = ""
    updated_at: str = ""
    last_seen_at: str | None = None

    def __post_init__(self) -> None:
        check_account(self.account)
        check_token(self.agent, "agent")
        check_name(self.description, "description")
        if self.origin not in ("manual", "learned"):
            raise ValidationError("origin is manual or learned", field="origin")


@dataclass(frozen=True, slots=True)
class NumberMatch:
    """What the store knows about one caller number in one account (or in ``default``)."""

    route: Route | None = None
    customer: Customer | None = None


#: Longest ``detail`` of an audit entry; longer text is cut (it is a summary, not a dump).
MAX_AUDIT_DETAIL = 200
#: What an erasure leaves where a phone number was in the audit log.
REDACTED = "[erased]"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One administrative write: ``actor`` (``api:<token name>``, ``cli:<OS user>`` or
    ``system:<task>``) did ``action`` (``route.set``, ``customer.delete``, ...) in
    ``account`` (None: every account) on ``target`` (a number key, a customer id, or empty),
    with a short ``detail`` that never holds a phone number; ``at`` is UTC."""

    actor: str
    action: str
    account: str | None
    target: str = ""
    detail: str = ""
    id: int | None = None
    at: str = ""

    def __post_init__(self) -> None:
        if len(self.detail) > MAX_AUDIT_DETAIL:
            object.__setattr__(self, "detail", self.detail[: MAX_AUDIT_DETAIL - 3] + "...")
