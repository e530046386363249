"""What the protocol layer costs a recognised caller's session, optionally against a revision.

    python bench/protocol.py [--against REV]

Times `AGIConnection` alone for the fast path's whole conversation: the header block as
Asterisk writes it, the one ``EXEC MSet`` answer, its reply. With ``--against``, the same
with ``fastagi_router/agi/connection.py`` as it was at git revision REV, interleaved, so that
a change to the parser can be shown not to slow the hot path.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastagi_router.agi.connection as current
from fastagi_router.agi import commands
from fastagi_router.simulator import CallSpec, header_block

ROOT = Path(__file__).resolve().parent.parent
BLOCK = header_block(CallSpec(args=("account=CL0000",)))
ANSWER = commands.set_variables([("SMARTROUTING_STATUS", "AGENT")])[0]
N = 20_000


def session(module: ModuleType) -> None:
    conn = module.AGIConnection()
    if hasattr(conn, "receive"):  # as the engine reads a chunk
        conn.receive(BLOCK)
        conn.send(ANSWER)
        conn.receive(b"200 result=0\n")
        return
    conn.receive_data(BLOCK)
    conn.next_event()
    conn.send(ANSWER)
    conn.receive_data(b"200 result=0\n")
    conn.next_event()


def load(revision: str, directory: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:fastagi_router/agi/connection.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    path = Path(directory) / "connection_at_revision.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("fastagi_router.agi._at_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="REV", help="git revision to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modules = [("this tree", current)]
        if args.against:
            modules.append((args.against, load(args.against, tmp)))
        best = {name: float("inf") for name, _ in modules}
        for _ in range(5):
            for name, module in modules:
                took = min(timeit.repeat(lambda m=module: session(m), number=N, repeat=3))
                best[name] = min(best[name], took / N)
        for name, seconds in best.items():
            print(f"{name:>12}: {seconds * 1e6:.2f} us per recognised session (best of 15x{N})")


if __name__ == "__main__":
    main()
