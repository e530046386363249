"""``fastagi-router cache``: list, show, purge one key or all, also while a router runs."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.config import UpstreamSettings
from fastagi_router.model import Customer
from fastagi_router.simulator import CallSpec
from fastagi_router.upstream.cache import CacheEntry, CacheKey, CachePolicy, UpstreamCache
from tests.conftest import run_cli as run
from tests.fakes.upstream import FakeUpstream

NUMBER = CacheKey("CL0000", "number", "+84899990988")
OTHER_ACCOUNT = CacheKey("CL0001", "number", "+84899990988")
CODE = CacheKey("CL0000", "code", "4242")
UNKNOWN = CacheKey("CL0000", "number", "+84911111111")


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "cli.db")

    async def fill() -> None:
        cache = await UpstreamCache.open(path, policy=CachePolicy())
        now = time.time()
        for key, age in ((NUMBER, 10), (OTHER_ACCOUNT, 7200), (CODE, 400)):
            customer = Customer(
                key.account,
                key.account,
                destinations=("207", "209", "", ""),
                vip=key is NUMBER,
                phone_numbers=(key.value,) if key.kind == "number" else (),
                code=key.value if key.kind == "code" else None,
            )
            cache.put(CacheEntry(key, customer, now - age))
        cache.put(CacheEntry(UNKNOWN, None, now - 5))
        await cache.close()

    asyncio.run(fill())
    return path


def test_list(db: str) -> None:
    code, out = run("cache", "list", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["account", "kind", "key", "answer"]
    assert len(lines) == 5
    number = next(line for line in lines if line.startswith("CL0000") and "+84899990988" in line)
    assert "found" in number and "fresh" in number and "207,209" in number
    assert "stale" in next(line for line in lines if line.startswith("CL0001"))
    assert "refresh" in next(line for line in lines if "4242" in line)
    assert "not found" in next(line for line in lines if "+84911111111" in line)
    code, out = run("cache", "list", "--db", db, "--account", "CL0001")
    assert len(out.splitlines()) == 2


def test_show_a_number_in_any_form_or_a_code(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("cache", "show", "0899990988", "--db", db)
    assert code == 0 and out.count("+84899990988") == 2
    code, out = run("cache", "show", "+84 899 990 988", "--account", "CL0001", "--db", db)
    assert code == 0 and "CL0001" in out and "CL0000" not in out
    code, out = run("cache", "show", "--code", "4242", "--db", db)
    assert code == 0 and "4242" in out
    assert run("cache", "show", "0900000000", "--db", db)[0] == 1
    assert "nothing cached" in capsys.readouterr().err


def test_purge_one_key_then_all(db: str) -> None:
    code, out = run("cache", "purge", "0899990988", "--account", "CL0000", "--db", db)
    assert code == 0 and "purged 1 entry" in out
    assert run("cache", "purge", "0899990988", "--account", "CL0000", "--db", db)[0] == 1
    assert run("cache", "show", "0899990988", "--db", db)[0] == 0  # CL0001's is still there
    assert run("cache", "purge", "--code", "4242", "--db", db)[1].startswith("purged 1")
    code, out = run("cache", "purge", "--all", "--account", "CL0001", "--db", db)
    assert code == 0 and "purged 1 entry" in out
    code, out = run("cache", "purge", "--all", "--db", db)
    assert code == 0 and "purged 1 entry" in out
    assert len(run("cache", "list", "--db", db)[1].splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ("cache", "purge"),
        ("cache", "purge", "0899990988", "--code", "1"),
        ("cache", "purge", "--all", "0899990988"),
        ("cache", "show", "hello"),
        ("cache", "show", "--code", "12a"),
        ("cache", "list", "--account", "a b"),
    ],
)
def test_bad_input_is_a_clear_error(
    db: str, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv, "--db", db)[0] == 2
    assert "fastagi-router: error" in capsys.readouterr().err
    assert len(run("cache", "list", "--db", db)[1].splitlines()) == 5  # nothing lost


async def cli(*argv: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGI_ROUTER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastagi_router",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_purge_while_the_router_runs(start_router: Any, fake: FakeUpstream) -> None:
    fake.add_number("CL0000", "0084911111111", destination1="207")
    router = await start_router(upstream=UpstreamSettings(url=fake.url, token=fake.token))
    db = router.app.settings.db
    call = CallSpec(callerid="0911111111", script="route?account=CL0000", port=router.app.agi.port)
    sources = [(await router.asterisk.call(call)).variables["SMARTROUTING_SOURCE"]]
    await router.app.upstream.wait_idle()
    code, out = await cli("cache", "list", "--db", db)
    assert code == 0 and "+84911111111" in out, out
    sources.append((await router.asterisk.call(call)).variables["SMARTROUTING_SOURCE"])
    code, out = await cli("cache", "purge", "0911111111", "--db", db)
    assert code == 0, out
    sources.append((await router.asterisk.call(call)).variables["SMARTROUTING_SOURCE"])
    assert sources == ["api", "cache", "api"]
    assert fake.asked("0084911111111") == 2
