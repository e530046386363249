"""``kill -9`` a serving router in the middle of a burst of writes, many times over.

Each round (see tests/crash.py): a fresh store, ``fastagi-router serve``, ``--workers``
clients writing through the REST API (new routes, updates of a route and of a customer,
CSV imports of 5 customers), SIGKILL after a random 0.2 to 2 s, then ``PRAGMA
integrity_check``, a check of every acknowledged write and of the all-or-nothing imports,
and a restart of ``serve`` on the file. Prints each round and the totals; exits 1 if any
acknowledged write was lost or any file failed its check.

    .venv/bin/python bench/kill9.py [--rounds 20] [--workers 24] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.crash import crash_round


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    chance = random.Random(args.seed)
    acked = unacked = checked = lost = bad_files = bad_restarts = 0
    for round_no in range(1, args.rounds + 1):
        kill_after = chance.uniform(0.2, 2.0)
        with tempfile.TemporaryDirectory() as tmp:
            result = await crash_round(Path(tmp), workers=args.workers, kill_after=kill_after)
        print(f"round {round_no:3d}: kill -9 after {kill_after:4.2f} s: {result}")
        for line in result.lost[:5]:
            print("    lost:", line)
        acked += result.acknowledged
        unacked += result.unacknowledged
        checked += result.checked
        lost += len(result.lost)
        bad_files += result.integrity != "ok"
        bad_restarts += not result.restarted_ok
    print(
        f"{args.rounds} rounds: {acked} writes acknowledged, {unacked} not; {checked} checks; "
        f"{lost} lost; {bad_files} files failing integrity_check; {bad_restarts} failed restarts"
    )
    return 1 if lost or bad_files or bad_restarts else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
