"""The ``fastagi-router`` command.

Every command takes ``--config FILE`` and ``--db PATH`` after its name and resolves the
store the same way: ``--db``, else ``$FASTAGI_ROUTER_DB``, else ``db`` in the configuration
file, else ``fastagi-router.db`` in the working directory. Exit codes: 0 done, 1 the thing
asked for was not there (a route to delete, a call that got no answer), 2 bad input or
configuration, 3 the store failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

from fastagi_router import __version__, access_cli
from fastagi_router import admin as ops
from fastagi_router.config import Settings, load_settings, parse_hostport
from fastagi_router.csvio import format_customers, parse_customers
from fastagi_router.errors import (
    ConfigError,
    ConflictError,
    RouterError,
    StoreError,
    ValidationError,
)
from fastagi_router.logutil import configure
from fastagi_router.model import DEFAULT_ACCOUNT, check_account, check_token
from fastagi_router.phone import NumberParser
from fastagi_router.store import SQLiteStore
from fastagi_router.upstream import admin as cache_admin

log = logging.getLogger("fastagi_router.cli")

EXIT_OK, EXIT_MISSING, EXIT_INPUT, EXIT_STORE = 0, 1, 2, 3
_PAGE = 1000


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--db", metavar="PATH", help="SQLite store (default fastagi-router.db)")


def _add_check_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check-config", help="load the configuration and print it; start nothing"
    )
    check.add_argument("file", nargs="?", help="configuration file (same as --config FILE)")
    check.add_argument(
        "--example",
        action="store_true",
        help="print an example file: every setting at its default, with its meaning",
    )
    _common(check)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every command."""
    parser = argparse.ArgumentParser(
        prog="fastagi-router", description="FastAGI smart-routing server for Asterisk"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the FastAGI server and the REST API")
    _common(serve)
    serve.add_argument("--agi", metavar="HOST:PORT", help="FastAGI listen address")
    serve.add_argument("--http", metavar="HOST:PORT", help="REST API listen address")
    serve.add_argument("--workers", metavar="N", help="FastAGI worker processes (default 1)")
    # Set by the supervisor when it starts a worker; not for people.
    serve.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    serve.add_argument("--metrics-dir", help=argparse.SUPPRESS)

    routes = commands.add_parser("routes", help="the sticky-agent table")
    route_cmds = routes.add_subparsers(dest="action", required=True, metavar="ACTION")
    rset = route_cmds.add_parser("set", help="route calls from PHONE to AGENT first")
    rset.add_argument("phone")
    rset.add_argument("agent")
    rlist = route_cmds.add_parser("list", help="list routes")
    rdel = route_cmds.add_parser("delete", help="delete the route of PHONE")
    rdel.add_argument("phone")
    for sub in (rset, rlist, rdel):
        _common(sub)
        sub.add_argument("--account", default=None, help=f"account (default {DEFAULT_ACCOUNT})")

    customers = commands.add_parser("customers", help="customer records")
    cust_cmds = customers.add_subparsers(dest="action", required=True, metavar="ACTION")
    cimport = cust_cmds.add_parser("import", help="import customers from a CSV file")
    cimport.add_argument("file", help="CSV file ('-' for standard input)")
    cexport = cust_cmds.add_parser("export", help="write every customer as CSV")
    cexport.add_argument("--account", default=None, help="only this account")
    cexport.add_argument("--output", "-o", default="-", help="file ('-' for standard output)")
    for sub in (cimport, cexport):
        _common(sub)

    for sub in cache_admin.add_parser(commands):
        _common(sub)
    for sub in access_cli.add_parsers(commands):
        _common(sub)

    call = commands.add_parser("call", help="play Asterisk: place a test call to a router")
    _common(call)
    call.add_argument("number", help="caller number (use 'anonymous' for a withheld one)")
    call.add_argument(
        "--dtmf",
        action="append",
        default=[],
        metavar="DIGITS",
        help="digits typed at a code prompt (repeat for each attempt)",
    )
    call.add_argument(
        "--script",
        default="route",
        help="AGI script and query, e.g. 'route?account=CL0000' (default: route)",
    )
    call.add_argument("--host", help="router host (default: from agi.listen)")
    call.add_argument("--port", type=int, help="router port (default: from agi.listen)")
    call.add_argument("--timeout", type=float, default=30.0, help="give up after (s)")

    _add_check_config(commands)

    ops.add_parsers(commands, _common)

    token = commands.add_parser("token", help="REST API tokens")
    token_cmds = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    tnew = token_cmds.add_parser(
        "new", help="make a token: print it once, with the api.tokens entry that accepts it"
    )
    thash = token_cmds.add_parser(
        "hash", help="print the api.tokens entry for a token read from standard input"
    )
    for sub in (tnew, thash):
        sub.add_argument(
            "--accounts",
            default="*",
            metavar="A+B",
            help="accounts the token may use, joined by '+' (default '*': all)",
        )
        sub.add_argument("--write", action="store_true", help="may also write (default: read)")
        sub.add_argument("--name", default="", help="label for logs")
    return parser


def run_loop(kind: str, main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop (``uvloop``, or ``auto`` when installed) or asyncio's loop."""
    if kind != "asyncio":
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            if kind == "uvloop":
                main.close()
                raise ConfigError("event_loop = uvloop, but uvloop is not installed") from None
        else:
            result: int = uvloop.run(main)
            return result
    return asyncio.run(main)


def _settings(args: argparse.Namespace, **overrides: str | None) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "db", None):
        values["db"] = args.db
    return load_settings(args.config, overrides=values)


def _account(args: argparse.Namespace) -> str:
    return check_account(args.account or DEFAULT_ACCOUNT)


async def _with_store(
    settings: Settings, work: Callable[[SQLiteStore], Coroutine[Any, Any, int]]
) -> int:
    store = await SQLiteStore.open(settings.db)
    try:
        return await work(store)
    finally:
        await store.close()


# -- commands -----------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT or SIGTERM; SIGHUP reloads the configuration."""
    from fastagi_router import serving  # noqa: PLC0415

    overrides = {"agi.listen": args.agi, "http.listen": args.http, "workers": args.workers}

    def load() -> Settings:
        return _settings(args, **overrides)

    settings = load()
    configure(settings.log)
    serving.raise_fd_limit()
    if args.worker_fd is not None:
        run = serving.serve_worker(
            settings, load, args.worker_fd, args.worker_index, args.metrics_dir or "."
        )
    elif settings.workers > 1:
        # Workers get the same configuration sources; they read the settings themselves.
        passed = [a for a in _passed_options(args) if a]
        run = serving.supervise(settings, load, passed)
    else:
        run = serving.serve_one(settings, load)
    return run_loop(settings.event_loop, run)


def _passed_options(args: argparse.Namespace) -> list[str]:
    """The serve options a worker must see to load the same settings (not --workers)."""
    options: list[str] = []
    for flag, value in (
        ("--config", args.config),
        ("--db", args.db),
        ("--agi", args.agi),
        ("--http", args.http),
    ):
        if value:
            options += [flag, value]
    return options


def cmd_routes(args: argparse.Namespace, out: TextIO) -> int:
    """``routes set|list|delete``."""
    settings = _settings(args)
    account = _account(args)
    numbers = NumberParser(settings.default_region)

    async def work(store: SQLiteStore) -> int:
        if args.action == "set":
            number = numbers.parse(args.phone)
            route = await store.set_route(
                account,
                args.phone.strip(),
                number.key,
                check_token(args.agent, "agent"),
                actor=access_cli.cli_actor(),
            )
            print(
                f"{route.account} {route.phone_number} ({route.number_key}) -> {route.agent}",
                file=out,
            )
            return EXIT_OK
        if args.action == "delete":
            number = numbers.parse(args.phone)
            if await store.delete_route(
                account, number_key=number.key, actor=access_cli.cli_actor()
            ):
                print(f"deleted {account} {number.key}", file=out)
                return EXIT_OK
            print(f"no route for {number.key} in account {account}", file=sys.stderr)
            return EXIT_MISSING
        print(
            f"{'account':<12} {'phone_number':<16} {'key':<16} {'agent':<10} "
            f"{'origin':<8} {'last_seen':<29} updated_at",
            file=out,
        )
        expiry = _expiry(settings)
        offset = 0
        while True:
            page = await store.list_routes(None if args.account is None else account, _PAGE, offset)
            for r in page.items:
                seen = r.last_seen_at or "-"
                if r.origin == "learned" and expiry and (r.last_seen_at or r.updated_at) < expiry:
                    seen += " (expired)"
                print(
                    f"{r.account:<12} {r.phone_number:<16} {r.number_key:<16} {r.agent:<10} "
                    f"{r.origin:<8} {seen:<29} {r.updated_at}",
                    file=out,
                )
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return EXIT_OK

    return asyncio.run(_with_store(settings, work))


def _expiry(settings: Settings) -> str | None:
    """The last-seen time (the store's UTC format) before which a learned entry no longer
    routes, or None when ``learning.affinity_days`` is 0."""
    days = settings.learning.affinity_days
    if not days:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - days * 86400))


def cmd_customers(args: argparse.Namespace, out: TextIO) -> int:
    """``customers import|export``."""
    settings = _settings(args)
    if args.action == "import":
        return _import(settings, args.file, out)
    account = None if args.account is None else check_account(args.account)
    with contextlib.ExitStack() as stack:
        target = out
        if args.output != "-":
            target = stack.enter_context(open(args.output, "w", encoding="utf-8", newline=""))

        async def export(store: SQLiteStore) -> int:
            offset = 0
            while True:
                page = await store.list_customers(account, _PAGE, offset)
                lines = format_customers(page.items)
                if offset:
                    next(lines)  # the header, already written
                target.writelines(lines)
                offset += len(page.items)
                if not page.items or offset >= page.total:
                    return EXIT_OK

        return asyncio.run(_with_store(settings, export))


def _import(settings: Settings, path: str, out: TextIO) -> int:
    numbers = NumberParser(settings.default_region)
    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}", field="file") from exc
    with handle if handle is not sys.stdin else contextlib.nullcontext(handle):
        try:
            parsed = parse_customers(handle, numbers)
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{path} is not UTF-8 text: {exc.reason}") from exc
    if parsed.errors:
        for error in parsed.errors:
            print(f"{path}:{error.line}: {error.reason}", file=sys.stderr)
        print(f"nothing imported: {len(parsed.errors)} bad row(s)", file=sys.stderr)
        return EXIT_INPUT

    async def work(store: SQLiteStore) -> int:
        try:
            count = await store.import_customers(parsed.customers, actor=access_cli.cli_actor())
        except ConflictError as exc:
            line = parsed.lines[exc.index] if exc.index is not None else "?"
            print(f"{path}:{line}: {exc.message}", file=sys.stderr)
            print("nothing imported", file=sys.stderr)
            return EXIT_INPUT
        print(f"imported {count} customer(s)", file=out)
        return EXIT_OK

    return asyncio.run(_with_store(settings, work))


def cmd_cache(args: argparse.Namespace, out: TextIO) -> int:
    """``cache list|show|purge``: the upstream API's cached answers."""
    return asyncio.run(cache_admin.run(args, _settings(args), out))


def cmd_erase(args: argparse.Namespace, out: TextIO) -> int:
    """``erase PHONE [--account A]``: remove a caller's number from everything stored."""
    return asyncio.run(access_cli.erase(args, _settings(args), out))


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    """``audit list``: the audit log, newest first."""
    return asyncio.run(access_cli.audit_list(args, _settings(args), out))


def cmd_call(args: argparse.Namespace, out: TextIO) -> int:
    """``call``: place one simulated call and print what the router set."""
    from fastagi_router.simulator import CallSpec, Keypress, place_call  # noqa: PLC0415

    settings = _settings(args)
    host, port = parse_hostport(settings.agi.listen, "agi.listen")
    host = args.host or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)  # noqa: S104
    port = args.port or port
    spec = CallSpec(callerid=args.number, script=args.script or None, host=host, port=port)
    presses = [Keypress(digits) for digits in args.dtmf]
    result = asyncio.run(place_call(host, port, spec, presses, timeout=args.timeout))
    for line in result.commands:
        print(f"> {line}", file=out)
    for name, value in sorted(result.variables.items()):
        print(f"{name}={value}", file=out)
    print(
        f"round trips: {result.round_trips}, {result.elapsed * 1000:.1f} ms, "
        f"closed by {result.closed_by}",
        file=out,
    )
    if not result.status:
        print(
            f"the router set no SMARTROUTING_STATUS (is it running on {host}:{port}?)",
            file=sys.stderr,
        )
        return EXIT_MISSING
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    """``check-config [FILE] [--example]``: load the configuration and print every setting
    (the TLS files of the REST API are loaded too, so that a bad certificate is found before
    ``serve``), or print the example configuration file."""
    from fastagi_router.api.server import tls_context  # noqa: PLC0415

    if args.example:
        from fastagi_router.config_example import example_config  # noqa: PLC0415

        out.write(example_config())
        return EXIT_OK
    if args.file:
        if args.config and args.config != args.file:
            raise ConfigError("give the configuration file once: FILE or --config FILE")
        args.config = args.file
    settings = _settings(args)
    tls_context(settings.http)
    print(settings, file=out)
    return EXIT_OK


def cmd_ops(args: argparse.Namespace, out: TextIO) -> int:
    """``healthcheck``, ``dialplan``, ``backup``, ``restore``, ``migrate``."""
    return ops.run(args, lambda: _settings(args), out)


def cmd_token(args: argparse.Namespace, out: TextIO) -> int:
    """``token new|hash``: make a token, or hash one, and print its ``api.tokens`` entry."""
    from fastagi_router.api.tokens import (  # noqa: PLC0415
        digest,
        generate_token,
        hash_setting,
        parse_entry,
    )

    if args.action == "new":
        token = generate_token()
        print(f"token: {token}", file=out)
        hashed = f"sha256:{digest(token)}"
    else:
        # A token in clear (refused when malformed or short), or already its sha256: hash.
        hashed = hash_setting(sys.stdin.readline().strip(), "token")
    entry = f"{hashed} accounts={args.accounts} {'write' if args.write else 'read'}"
    if args.name:
        entry += f" name={args.name}"
    spec = parse_entry(entry, "token")  # checks the accounts and the name
    print(f"api.tokens entry: {spec.entry()}", file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        if args.command == "serve":
            return cmd_serve(args)
        handler = {
            "routes": cmd_routes,
            "customers": cmd_customers,
            "cache": cmd_cache,
            "erase": cmd_erase,
            "audit": cmd_audit,
            "call": cmd_call,
            "check-config": cmd_check_config,
            "token": cmd_token,
            "healthcheck": cmd_ops,
            "dialplan": cmd_ops,
            "backup": cmd_ops,
            "restore": cmd_ops,
            "migrate": cmd_ops,
        }[args.command]
        return handler(args, stream)
    except (ConfigError, ValidationError) as exc:
        field = f" ({exc.field})" if isinstance(exc, ValidationError) and exc.field else ""
        print(f"fastagi-router: error{field}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except StoreError as exc:
        print(f"fastagi-router: store error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except RouterError as exc:
        print(f"fastagi-router: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
