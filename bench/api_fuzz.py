"""The long schemathesis run: every phase, against a real ``serve`` process.

Starts ``fastagi-router serve`` (a fresh SQLite file, ports chosen by the kernel, an admin
token) and runs schemathesis's command line against its ``/openapi.json`` with every
phase (examples, coverage, fuzzing, stateful) and every check but these, turned off in the
configuration written to a temporary ``schemathesis.toml``:

* ``positive_data_acceptance``: the document cannot say that a phone number must parse or
  that a body's account must be the parameter's (see tests/api/test_schema_fuzz.py);
* ``use_after_free`` and ``ensure_resource_availability``: they follow a record from one
  request to the next by its path alone, while the ``account`` parameter scopes it (a
  record deleted in account X is still there in account Y);
* ``allow_header_conformance`` on ``/v1/customers/import`` only: its ``Allow`` rightly
  lists GET, PUT and DELETE too (a customer whose id is ``import`` is served there; the
  document says so, but OpenAPI gives a literal path precedence over a template).

The test suite runs a bounded version of the fuzzing phase; this is the one to run before
a release.

    .venv/bin/python bench/api_fuzz.py [--max-examples 200] [--seed N] [--workers 4]

Prints schemathesis's report, then whether the server answered a 5xx or logged an error of
its own; exits 0 when neither found anything.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.served import SERVED_TOKEN, Served

_5XX = re.compile(r'HTTP/1\.[01]" 5[0-9][0-9] ')
_APP_ERROR = re.compile(r"(ERROR|CRITICAL) fastagi_router")

CONFIG = """\
[checks]
positive_data_acceptance.enabled = false
use_after_free.enabled = false
ensure_resource_availability.enabled = false

[[operations]]
include-path = "/v1/customers/import"
checks.allow_header_conformance.enabled = false
"""


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", default="1")
    args = parser.parse_args()
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        print("schemathesis is not installed: pip install '.[test]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "schemathesis.toml"
        config.write_text(CONFIG)
        async with Served(Path(tmp) / "fuzz.db", Path(tmp) / "serve.log") as served:
            command = [
                st,
                "--config-file",
                str(config),
                "run",
                f"{served.url}/openapi.json",
                "-H",
                f"Authorization: Bearer {SERVED_TOKEN}",
                "--max-examples",
                str(args.max_examples),
                "--workers",
                args.workers,
                "--report-dir",
                str(Path(tmp) / "report"),
            ]
            if args.seed is not None:
                command += ["--seed", str(args.seed)]
            print("+", " ".join(c if "Bearer" not in c else "-H '...'" for c in command[1:]))
            # In the temporary directory: schemathesis keeps its cache in the working one.
            proc = await asyncio.create_subprocess_exec(*command, cwd=tmp)
            status = await proc.wait()
            log = served.log.read_text(errors="replace")
        lines = log.splitlines()
        errors = [n for n, line in enumerate(lines) if _5XX.search(line) or _APP_ERROR.search(line)]
        malformed = sum("BadHttpMessage" in line for line in lines)
        print(
            f"schemathesis exit status {status}; server log: {len(errors)} 5xx answers or "
            f"router errors; {malformed} requests refused by aiohttp's HTTP parser (400)"
        )
        for n in errors[:1]:
            print("\n".join(lines[max(0, n - 3) : n + 25]))
        return status or (1 if errors else 0)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
