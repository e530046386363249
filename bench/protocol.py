"""What the protocol layer costs a recognised caller's session, optionally against a revision.

    python bench/protocol.py [--against REV]

Times `AGIConnection` alone for the fast path's whole conversation: the header block as
Asterisk writes it, the one ``EXEC MSet`` answer, its reply. With ``--against``, the same
with the ``fastagi_router`` package as it was at git revision REV (the protocol layer and
everything it imports), interleaved, so that a change to the parser can be shown not to
slow the hot path. Each tree is timed in a process of its own, five rounds in turn.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

# In the parent from wherever it is installed; in each timed process from the tree that
# PYTHONPATH names.
from fastagi_router.agi import AGIConnection, commands
from fastagi_router.simulator import CallSpec, header_block

ROOT = Path(__file__).resolve().parent.parent
N = 20_000
ROUNDS = 5


def measure() -> float:
    """Seconds per session, best of 3 x `N`, for the package first on the module path."""
    block = header_block(CallSpec(args=("account=CL0000",)))
    answer = commands.set_variables([("SMARTROUTING_STATUS", "AGENT")])[0]

    def session() -> None:
        conn = AGIConnection()
        if hasattr(conn, "receive"):  # as the engine reads a chunk
            conn.receive(block)
            conn.send(answer)
            conn.receive(b"200 result=0\n")
            return
        conn.receive_data(block)
        conn.next_event()
        conn.send(answer)
        conn.receive_data(b"200 result=0\n")
        conn.next_event()

    return min(timeit.repeat(session, number=N, repeat=3)) / N


def _extract(revision: str, directory: str) -> str:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "fastagi_router"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def _timed(tree: str) -> float:
    # -P: this script's directory must not come first on the module path; PYTHONPATH does.
    done = subprocess.run(
        [sys.executable, "-P", __file__, "--measure"],
        env=os.environ | {"PYTHONPATH": tree},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="REV", help="git revision to compare with")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(measure())
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": str(ROOT)}
        if args.against:
            trees[args.against] = _extract(args.against, tmp)
        best = {name: float("inf") for name in trees}
        for _ in range(ROUNDS):
            for name, tree in trees.items():
                best[name] = min(best[name], _timed(tree))
        for name, seconds in best.items():
            print(f"{name:>12}: {seconds * 1e6:.2f} us per recognised session (best of 15x{N})")


if __name__ == "__main__":
    main()
