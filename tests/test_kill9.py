"""``kill -9`` during a burst of concurrent writes through the REST API, then a restart:
every acknowledged write is in the file, which passes ``PRAGMA integrity_check``
(see `tests.crash`). A few rounds here; ``bench/kill9.py`` runs many and prints counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash import crash_round


@pytest.mark.parametrize("kill_after", [0.4, 0.8, 1.2])
async def test_kill_9_loses_no_acknowledged_write(tmp_path: Path, kill_after: float) -> None:
    result = await crash_round(tmp_path, kill_after=kill_after)
    assert result.integrity == "ok", result
    assert result.lost == [], result.lost[:10]
    assert result.acknowledged > 20, result  # the kill did land in the middle of a burst
    assert result.unacknowledged > 0, result
    assert result.checked >= result.acknowledged * 0.4, result  # most writes checked one by one
    assert result.restarted_ok, result
