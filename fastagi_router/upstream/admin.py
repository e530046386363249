"""The ``fastagi-router cache`` command: inspect and purge the upstream cache.

It opens the same SQLite file as ``serve`` (WAL mode), so it works while the server runs:
a purge is seen by the server's next lookup, which then asks the API.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import TextIO

from fastagi_router.access_cli import cli_actor
from fastagi_router.config import Settings
from fastagi_router.errors import ValidationError
from fastagi_router.model import check_account, check_code
from fastagi_router.phone import NumberParser
from fastagi_router.upstream.cache import CacheEntry, CachePolicy, UpstreamCache

EXIT_OK, EXIT_MISSING = 0, 1
_PAGE = 1000
_HEADER = (
    f"{'account':<12} {'kind':<6} {'key':<18} {'answer':<9} {'fetched (UTC)':<19} "
    f"{'age':>9} {'state':<8} {'vip':<3} {'oncall':<6} destinations"
)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    """Add ``cache list|show|purge`` to ``commands``; return the leaf parsers."""
    cache = commands.add_parser("cache", help="the upstream API cache: inspect, purge")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list cached answers")
    listing.add_argument("--account", help="only this account")
    show = actions.add_parser("show", help="show the cached answers for one number or code")
    purge = actions.add_parser("purge", help="delete cached answers: one number or code, or all")
    for sub in (show, purge):
        sub.add_argument("number", nargs="?", help="caller number (any usual form)")
        sub.add_argument("--code", help="an identification code instead of a number")
        sub.add_argument("--account", help="only this account (default: every account)")
    purge.add_argument("--all", action="store_true", help="every entry (of --account, if given)")
    return [listing, show, purge]


async def run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Carry out ``cache ACTION``; return the exit code.

    Raises `ValidationError` for a bad number, code or account, `StoreError` when the store
    cannot be read or written.
    """
    account = check_account(args.account) if args.account else None
    cache = await UpstreamCache.open(
        settings.db,
        policy=CachePolicy.from_settings(settings.upstream),
        max_entries=settings.upstream.cache_max_entries,
    )
    try:
        if args.action == "list":
            return await _list(cache, account, out)
        if args.action == "purge" and args.all:
            if args.number or args.code:
                raise _usage("purge --all takes no number or code")
            count = await cache.purge(account, actor=cli_actor())
            print(f"purged {count} entr{'y' if count == 1 else 'ies'}", file=out)
            return EXIT_OK
        kind, value = _what(args, settings)
        if args.action == "show":
            entries = await cache.find(kind, value, account)
            if not entries:
                print(f"nothing cached for {kind} {value}", file=sys.stderr)
                return EXIT_MISSING
            _print(entries, cache.policy, out)
            return EXIT_OK
        count = await cache.delete(kind, value, account, actor=cli_actor())
        if not count:
            print(f"nothing cached for {kind} {value}", file=sys.stderr)
            return EXIT_MISSING
        print(f"purged {count} entr{'y' if count == 1 else 'ies'} for {kind} {value}", file=out)
        return EXIT_OK
    finally:
        await cache.close()


def _what(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    if bool(args.number) == bool(args.code):
        raise _usage(f"{args.action} takes a number or --code CODE (purge also takes --all)")
    if args.code:
        return "code", check_code(args.code.strip(), "code")
    return "number", NumberParser(settings.default_region).parse(args.number).key


def _usage(message: str) -> ValidationError:
    return ValidationError(message, field="arguments")


async def _list(cache: UpstreamCache, account: str | None, out: TextIO) -> int:
    print(_HEADER, file=out)
    offset = 0
    while True:
        page = await cache.entries(account, _PAGE, offset)
        _print(page.items, cache.policy, out, header=False)
        offset += _PAGE
        if not page.items or offset >= page.total:
            return EXIT_OK


def _print(
    entries: Iterable[CacheEntry], policy: CachePolicy, out: TextIO, *, header: bool = True
) -> None:
    now = time.time()
    if header:
        print(_HEADER, file=out)
    for entry in entries:
        c = entry.customer
        fetched = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.fetched_at))
        print(
            f"{entry.key.account:<12} {entry.key.kind:<6} {entry.key.value:<18} "
            f"{'found' if c else 'not found':<9} {fetched:<19} {_age(entry.age(now)):>9} "
            f"{policy.classify(entry, now):<8} "
            f"{(str(int(c.vip)) if c else '-'):<3} {(str(int(c.oncall)) if c else '-'):<6} "
            f"{','.join(d for d in c.destinations if d) if c else '-'}",
            file=out,
        )


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
