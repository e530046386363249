"""`fastagi_router.agi` does no I/O: it imports and works with sockets and asyncio gone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests import transcripts

BLOCKED = ("socket", "_socket", "ssl", "select", "selectors", "asyncio")

# Runs in a fresh interpreter: make the I/O modules unimportable, prove it, then import the
# protocol layer and parse a recorded header block with it.
SCRIPT = textwrap.dedent(
    """
    import json, sys

    blocked = json.loads(sys.argv[1])
    for name in blocked:
        assert name not in sys.modules, name + " was imported at start-up"
        sys.modules[name] = None  # "import name" now raises ImportError
    for name in blocked:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(name + " is still importable")

    from fastagi_router.agi import AGIConnection, commands

    conn = AGIConnection()
    conn.receive_data(sys.stdin.buffer.read())
    request = conn.next_event()
    sent = conn.send(commands.get_variable("CALLERID(num)"))
    conn.receive_data(b"200 result=1 (0899990988)\\n")
    reply = conn.next_event()
    print(json.dumps({
        "script": request.script,
        "callerid": request.callerid,
        "args": list(request.args),
        "sent": sent.decode(),
        "data": reply.data,
        "loaded": sorted(n for n in blocked if sys.modules.get(n) is not None),
    }))
    """
)


def test_agi_package_imports_and_parses_without_sockets_or_asyncio() -> None:
    block = transcripts.header_block(transcripts.load(transcripts.LOOKUP))
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(BLOCKED)],
        input=block,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert json.loads(completed.stdout) == {
        "script": "route",
        "callerid": "0899990988",
        "args": ["arg1", "arg two"],
        "sent": "GET VARIABLE CALLERID(num)\n",
        "data": "0899990988",
        "loaded": [],
    }


def test_the_blocking_is_real() -> None:
    """Under the same set-up an I/O import fails, so the test above is able to fail."""
    script = SCRIPT.replace("from fastagi_router.agi", "import asyncio\nfrom fastagi_router.agi")
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(BLOCKED)],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert b"import of asyncio halted" in completed.stderr, completed.stderr.decode()
