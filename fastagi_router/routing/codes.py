"""Limits on wrong identification codes: brute force over DTMF.

A caller who is not recognised is prompted for a code; whoever can place calls can type
codes until one matches. Every wrong code (typed, and not found, too short, or not a code)
counts against the caller's number and against the call's account; a withheld caller counts
against the account only, since it has no number to hold it to. When either count reaches
its limit the code prompt is locked for that key: the call is not prompted (or stops being
prompted) and ends UNKNOWN with reason ``too_many_attempts``.

Each count is a leaky bucket: it rises by one per wrong code and drains at ``limit`` per
``window_s``. So ``limit`` wrong codes in quick succession lock the key; it then gets one
more attempt every ``window_s / limit`` seconds, and is back to a clean slate after
``window_s`` seconds without a wrong code. Two numbers per key (the level and when it was
last measured) make the state small; at most `MAX_TRACKED` keys of each kind are kept, the
least recently failed dropped first, so a flood of distinct numbers cannot grow memory (the
account's limit still holds against it).

The counts live in the memory of one router process: with several worker processes each
counts on its own, and a restart starts from zero.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from fastagi_router.config import CodesSettings

#: Keys (numbers, or accounts) tracked at most per kind: about 25 MB at the worst.
MAX_TRACKED = 50_000


class FailureCounter:
    """Counts failures per key as leaky buckets; ``limit`` 0 counts nothing and locks nothing."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_TRACKED,
    ) -> None:
        self.limit = limit
        self._rate = limit / window_s
        self._clock = clock
        self._max_keys = max_keys
        #: key -> (level, when measured); oldest failure first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        level, then = bucket
        level -= (now - then) * self._rate
        if level <= 0:
            del self._buckets[key]
            return 0.0
        return level

    def locked(self, key: str) -> bool:
        """Return True when ``key`` has used up its failures for now."""
        if not self.limit:
            return False
        # Strictly above limit - 1: ``limit`` failures at once lock, and the key gets its
        # next attempt once one failure's worth has drained.
        return self._level(key, self._clock()) > self.limit - 1

    def fail(self, key: str) -> bool:
        """Count one failure for ``key``; return True when that leaves it locked."""
        if not self.limit:
            return False
        now = self._clock()
        level = self._level(key, now) + 1
        self._buckets[key] = (level, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return level > self.limit - 1


class CodeGuard:
    """The two limits of `CodesSettings`: per caller number and per account."""

    def __init__(
        self, settings: CodesSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.numbers = FailureCounter(
            settings.max_failures_per_number, settings.window_s, clock=clock
        )
        self.accounts = FailureCounter(
            settings.max_failures_per_account, settings.window_s, clock=clock
        )

    def locked(self, account: str, number_key: str | None) -> bool:
        """Return True when the account, or the number when there is one, is locked."""
        if self.accounts.locked(account):
            return True
        return number_key is not None and self.numbers.locked(number_key)

    def failed(self, account: str, number_key: str | None) -> bool:
        """Count one wrong code; return True when the account or the number is now locked.

        A withheld caller (``number_key`` None) counts against the account only.
        """
        locked = self.accounts.fail(account)
        if number_key is not None:
            locked = self.numbers.fail(number_key) or locked
        return locked

    def __len__(self) -> int:
        return len(self.numbers) + len(self.accounts)
