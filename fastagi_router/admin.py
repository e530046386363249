"""Operations commands: ``healthcheck``, ``dialplan``, ``backup``, ``restore``, ``migrate``.

None of them starts a server; ``backup``, ``restore`` and ``migrate`` work on the store file
named the same way as for every other command (``--db``, ``$FASTAGI_ROUTER_DB``, ``db`` in
the configuration file). Exit codes follow `fastagi_router.cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TextIO

from fastagi_router.config import Settings
from fastagi_router.errors import StoreError, ValidationError
from fastagi_router.store import maintenance

EXIT_OK, EXIT_MISSING = 0, 1

Common = Callable[[argparse.ArgumentParser], None]


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: Common
) -> None:
    """Add the operations commands to ``commands``; ``common`` adds --config and --db."""
    health = commands.add_parser(
        "healthcheck",
        help="exit 0 if the router on this host accepts FastAGI connections and is ready",
    )
    health.add_argument(
        "--timeout", type=float, default=2.0, metavar="S", help="per step (default 2)"
    )
    common(health)

    dialplan = commands.add_parser("dialplan", help="print the Asterisk dialplan snippets")
    dialplan.add_argument("name", nargs="?", help="one file (default: every .conf snippet)")
    dialplan.add_argument("--list", action="store_true", help="list the files")

    backup = commands.add_parser(
        "backup", help="copy the store consistently (also while the router runs), then check it"
    )
    backup.add_argument("dest", help="backup file to write")
    backup.add_argument("--force", action="store_true", help="overwrite DEST if it exists")
    common(backup)

    restore = commands.add_parser(
        "restore", help="replace the store with a backup (stop the router first)"
    )
    restore.add_argument("source", help="backup file to restore")
    common(restore)

    migrate = commands.add_parser("migrate", help="upgrade the store's schema to this version")
    migrate.add_argument(
        "--check", action="store_true", help="only report; exit 1 if migrations are pending"
    )
    common(migrate)


# -- dialplan -----------------------------------------------------------------------------


def dialplan_files() -> dict[str, Traversable]:
    """Return the dialplan files shipped with the package, by name."""
    folder = resources.files("fastagi_router") / "dialplan"
    return {f.name: f for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.is_file()}


def dialplan_text(name: str | None = None) -> str:
    """Return one dialplan file (``name``, ``.conf`` optional), or every ``.conf`` snippet.

    Raises `ValidationError` naming the known files when ``name`` is not one of them.
    """
    files = dialplan_files()
    if name is None:
        return "".join(
            f.read_text(encoding="utf-8") for n, f in files.items() if n.endswith(".conf")
        )
    found = files.get(name) or files.get(f"{name}.conf")
    if found is None:
        raise ValidationError(
            f"no dialplan file {name!r}; there are: {', '.join(files)}", field="name"
        )
    return found.read_text(encoding="utf-8")


# -- commands -----------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: Callable[[], Settings], out: TextIO) -> int:
    """Run the operations command in ``args``; ``settings`` loads the configuration."""
    if args.command == "dialplan":
        if args.list:
            for name in dialplan_files():
                print(name, file=out)
        else:
            out.write(dialplan_text(args.name))
        return EXIT_OK
    loaded = settings()
    if args.command == "healthcheck":
        from fastagi_router.healthcheck import check  # noqa: PLC0415

        health = check(loaded, timeout=args.timeout)
        print(health.reason, file=out if health.ok else sys.stderr)
        return EXIT_OK if health.ok else EXIT_MISSING
    if args.command == "backup":
        version = maintenance.backup(loaded.db, args.dest, force=args.force)
        print(f"backed up {loaded.db} to {args.dest} (schema version {version}, checked)", file=out)
        return EXIT_OK
    if args.command == "restore":
        version = maintenance.restore(args.source, loaded.db)
        print(f"restored {args.source} to {loaded.db} (schema version {version})", file=out)
        return EXIT_OK
    return _migrate(loaded.db, args.check, out)


def _migrate(db: str, check_only: bool, out: TextIO) -> int:
    upgrade = maintenance.pending(db)
    if upgrade.before == upgrade.after:
        print(f"{db}: schema version {upgrade.before}, up to date", file=out)
        return EXIT_OK
    if check_only:
        print(f"{db}: schema version {upgrade.before}, {upgrade.after} pending", file=out)
        return EXIT_MISSING
    if maintenance.in_use(db):
        raise StoreError(f"{db} is in use (is the router running?); stop it first")
    upgrade = maintenance.migrate(db)
    print(f"{db}: schema version {upgrade.before} -> {upgrade.after}", file=out)
    return EXIT_OK
