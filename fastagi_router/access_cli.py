"""The ``erase`` and ``audit`` commands, and who the audit log says ran a command.

``erase PHONE [--account A]`` removes a caller's number from everything the store keeps
(see `Store.erase_caller`) and prints what it removed; ``audit list`` prints the audit log,
newest first, with the filters of ``GET /v1/audit``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pwd
from typing import TextIO

from fastagi_router.config import Settings
from fastagi_router.errors import ValidationError
from fastagi_router.model import check_account
from fastagi_router.phone import NumberParser
from fastagi_router.store import SQLiteStore
from fastagi_router.store.audit import parse_time
from fastagi_router.store.base import AuditQuery

EXIT_OK = 0
DEFAULT_LIMIT = 100
_PAGE = 1000


def cli_actor() -> str:
    """``cli:`` and the OS user running the command (from the user id, not from $USER,
    which anyone can set); under sudo, the user who ran sudo too."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid{uid}"
    sudo = os.environ.get("SUDO_USER", "")
    if uid == 0 and sudo and sudo != user:
        return f"cli:{user} (sudo {sudo[:40]})"
    return f"cli:{user}"


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    """Add ``erase`` and ``audit list`` to ``commands``; return the leaf parsers."""
    erase = commands.add_parser(
        "erase", help="remove a caller's number from routes, customers, cache and audit log"
    )
    erase.add_argument("phone", help="the caller's number, any usual form")
    erase.add_argument("--account", help="only this account (default: every account)")
    audit = commands.add_parser("audit", help="the audit log of administrative writes")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print entries, newest first")
    listing.add_argument("--since", help="from this UTC time (YYYY-MM-DD[ HH:MM:SS])")
    listing.add_argument("--until", help="before this UTC time")
    listing.add_argument("--actor", help="only this actor (api:NAME, cli:USER, system:expiry)")
    listing.add_argument("--action", dest="what", help="only this action (route.create, ...)")
    listing.add_argument("--account", help="only this account")
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"entries (default {DEFAULT_LIMIT})"
    )
    return [erase, listing]


async def erase(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Carry out ``erase``; return the exit code (0, even when nothing was stored).

    Raises `ValidationError` for a bad number or account, `StoreError` when the store fails.
    """
    account = check_account(args.account) if args.account else None
    numbers = NumberParser(settings.default_region)
    number = numbers.parse(args.phone)
    store = await SQLiteStore.open(settings.db)
    try:
        erasure = await store.erase_caller(numbers.spellings(number), account, actor=cli_actor())
    finally:
        await store.close()
    where = f"account {account}" if account else "every account"
    counts = " ".join(f"{name}={count}" for name, count in erasure.counts().items())
    print(f"erased {erasure.number_key} in {where}: {counts}", file=out)
    return EXIT_OK


async def audit_list(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Carry out ``audit list``; return the exit code.

    Raises `ValidationError` for a bad filter, `StoreError` when the store fails.
    """
    if args.limit < 1:
        raise ValidationError("--limit must be 1 or more", field="limit")
    query = AuditQuery(
        since=parse_time(args.since, "since") if args.since else None,
        until=parse_time(args.until, "until") if args.until else None,
        actor=args.actor or None,
        action=args.what or None,
        accounts=frozenset({check_account(args.account)}) if args.account else None,
    )
    store = await SQLiteStore.open(settings.db)
    try:
        print(
            f"{'at (UTC)':<19} {'actor':<20} {'action':<16} {'account':<12} {'target':<16} detail",
            file=out,
        )
        printed = 0
        while printed < args.limit:
            size = min(_PAGE, args.limit - printed)
            page = await store.list_audit(dataclasses.replace(query, limit=size, offset=printed))
            for e in page.items:
                print(
                    f"{e.at:<19} {e.actor:<20} {e.action:<16} {e.account or '*':<12} "
                    f"{e.target or '-':<16} {e.detail}",
                    file=out,
                )
            printed += len(page.items)
            if len(page.items) < size:
                break
    finally:
        await store.close()
    return EXIT_OK
