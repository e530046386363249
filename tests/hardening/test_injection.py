"""Injection: hostile values through every path that can reach a channel variable.

The paths: the CLI (``routes set``, ``customers import``), the REST API (smart-routing
upsert, customer upsert, CSV import), the upstream API's answer, the caller id and name in
the header block, the AGI URL's parameters and arguments, and the DTMF digits of a prompt.

For every value of `corpus.HOSTILE`, each path either refuses it with a clear error naming
the field, and nothing is stored; or accepts it, and then a call is placed to a simulated
Asterisk with ``AGIEXECFULL`` set (``EXEC`` data substituted first) and the bytes on the wire
must set exactly the intended variables: one known command per round trip, no ``${`` or
``$[`` anywhere, the same variables whether or not Asterisk substitutes, and every
SMARTROUTING_* value a plain dialplan token (no ``,`` ``|`` ``&`` ``(`` ``)`` ``$`` quote,
space or control character).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from fastagi_router.cli import main
from fastagi_router.config import UpstreamSettings
from fastagi_router.csvio import COLUMNS
from fastagi_router.model import Customer
from fastagi_router.phone import NumberParser
from fastagi_router.simulator import (
    Asterisk,
    CallSpec,
    Keypress,
    SimulatedChannel,
    parse_args,
    separate_app_args,
)
from tests.conftest import ADMIN_TOKEN
from tests.fakes.sources import DictSource
from tests.fakes.upstream import FakeUpstream
from tests.hardening.corpus import HOSTILE, LONE_SURROGATE, short_id, single_line
from tests.hardening.support import PLAIN, SMARTROUTING_NAMES

CALLER, CALLER_KEY = "0911111111", "+84911111111"
VERBS = {("EXEC", "MSet"), ("ANSWER",), ("GET", "DATA"), ("STREAM", "FILE"), ("SET", "VARIABLE")}


def answer(status: str, **values: str) -> dict[str, str]:
    """Every SMARTROUTING_* variable of an answer: ``values`` over the empty defaults."""
    variables = {name: "" for name in SMARTROUTING_NAMES}
    variables.update(
        SMARTROUTING_DEST1="default",
        SMARTROUTING_VIP="0",
        SMARTROUTING_ONCALL="0",
        SMARTROUTING_IDENTIFIED_BY="none",
        SMARTROUTING_SOURCE="none",
        SMARTROUTING_STATUS=status,
    )
    variables.update({f"SMARTROUTING_{k.upper()}": v for k, v in values.items()})
    return variables


AGENT_104 = answer("AGENT", agent="104", number=CALLER_KEY, identified_by="number", source="local")


async def call(
    router: Any, spec: CallSpec | None = None, keypresses: Iterable[Keypress] = ()
) -> dict[str, str]:
    """Place a call through an Asterisk with AGIEXECFULL set; check the wire; return what
    was set."""
    spec = spec or CallSpec(callerid=CALLER)
    spec.port = router.app.agi.port
    asterisk = Asterisk(port=router.app.agi.port, agiexecfull=True)
    result = await asterisk.call(spec, list(keypresses), timeout=10)
    assert not result.reset and result.interrupted == 0 and result.closed_by == "server"
    full, plain = SimulatedChannel(agiexecfull=True), SimulatedChannel(agiexecfull=False)
    for line in result.commands:
        assert "${" not in line and "$[" not in line, line
        words = parse_args(line)
        assert tuple(words[:2]) in VERBS or tuple(words[:1]) in VERBS, line
        if words[:2] == ["EXEC", "MSet"]:
            # One word of data, and exactly the 14 pairs: nothing split off, nothing added.
            assert len(words) == 3, line
            assert len(separate_app_args(words[2])) == len(SMARTROUTING_NAMES), line
            full.execute(line)
            plain.execute(line)
    # Substituting ${...} changed nothing: there was nothing to substitute.
    assert full.assignments == plain.assignments
    assert [n for n, _ in full.assignments if n == "SMARTROUTING_STATUS"] == ["SMARTROUTING_STATUS"]
    assert set(result.variables) == SMARTROUTING_NAMES
    for name, value in result.variables.items():
        assert PLAIN.fullmatch(value), (name, value)
    return result.variables


@pytest.fixture
async def router(start_router: Any) -> Any:
    return await start_router(prompt={"attempts": 1}, codes={"max_failures_per_number": 0})


# -- the command line -------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    return main(list(argv), out=io.StringIO())


async def test_cli_routes_set(router: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = router.app.settings.db
    for value in HOSTILE:
        code = await asyncio.to_thread(run_cli, "routes", "set", CALLER, value, "--db", db)
        assert code == 2, short_id(value)
        assert "(agent)" in capsys.readouterr().err
        code = await asyncio.to_thread(run_cli, "routes", "set", value, "104", "--db", db)
        err = capsys.readouterr().err
        if code == 0:
            # Only a number wrapped in whitespace or punctuation can pass: it is that number.
            assert NumberParser("VN").parse(value).key == "104"
            await router.store.delete_route("default", number_key="104")
        else:
            assert code == 2 and "(phone_number)" in err, short_id(value)
        code = await asyncio.to_thread(
            run_cli, "routes", "set", CALLER, "104", "--db", db, "--account", value
        )
        assert code == 2 and "(account)" in capsys.readouterr().err, short_id(value)
    assert (await router.store.list_routes(None, 10, 0)).total == 0
    assert await call(router, CallSpec(callerid="anonymous"), [Keypress("")]) == answer(
        "UNKNOWN", reason="no_code"
    )


def csv_text(**row: str) -> str:
    base = {
        "account": "default",
        "customer_id": "C1",
        "name": "ACME",
        "phone_numbers": CALLER,
        "code": "1234",
        "destination1": "207",
        "destination2": "",
        "destination3": "",
        "destination4": "",
        "vip": "1",
        "oncall": "0",
    }
    base.update(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerow([base[c] for c in COLUMNS])
    return out.getvalue()


ACME_ANSWER = answer(
    "CUSTOMER",
    dest1="207",
    vip="1",
    customer="C1",
    number=CALLER_KEY,
    identified_by="number",
    source="local",
)


def customer_answer(customer: Customer) -> dict[str, str]:
    """What a call from the customer's first number must set: its record, as tokens."""
    dests = customer.destinations if any(customer.destinations) else ("default", "", "", "")
    return answer(
        "CUSTOMER",
        **{f"dest{n}": d for n, d in enumerate(dests, start=1)},
        vip="1" if customer.vip else "0",
        oncall="1" if customer.oncall else "0",
        customer=customer.customer_id,
        number=customer.phone_numbers[0],
        identified_by="number",
        source="local",
    )


@pytest.mark.parametrize("column", [c for c in COLUMNS if c != "oncall"])
async def test_cli_customers_import(
    router: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, column: str
) -> None:
    db = router.app.settings.db
    path = tmp_path / "hostile.csv"
    accepted = 0
    for value in HOSTILE:
        path.write_bytes(csv_text(**{column: value}).encode("utf-8"))
        code = await asyncio.to_thread(run_cli, "customers", "import", str(path), "--db", db)
        err = capsys.readouterr().err
        if code == 2:
            assert "nothing imported" in err or "not UTF-8" in err, (short_id(value), err)
            assert (await router.store.list_customers(None, 10, 0)).total == 0, short_id(value)
            continue
        assert code == 0, (short_id(value), err)
        accepted += 1
        [stored] = (await router.store.list_customers(None, 10, 0)).items
        # Accepted: as free text that no variable carries (the name), as the number it
        # stands for (digits in punctuation), or as an empty field (only whitespace).
        assert column in ("name", "phone_numbers") or not value.strip(), (column, short_id(value))
        await router.store.delete_customer(stored.account, stored.customer_id)
        if not stored.phone_numbers:
            assert not value.replace(";", "").strip()  # no number at all: nothing to call
            continue
        await router.store.import_customers([stored])
        assert await call(
            router,
            CallSpec(callerid=stored.phone_numbers[0], script=f"route?account={stored.account}"),
        ) == customer_answer(stored)
        await router.store.delete_customer(stored.account, stored.customer_id)
    # A byte sequence that is not UTF-8 (a lone surrogate on disk): refused, nothing stored.
    path.write_bytes(csv_text(**{column: "x"}).encode().replace(b"x", b"\xed\xa0\x80"))
    assert await asyncio.to_thread(run_cli, "customers", "import", str(path), "--db", db) == 2
    assert (await router.store.list_customers(None, 10, 0)).total == 0
    if column not in ("name", "phone_numbers"):
        assert accepted <= sum(not v.strip() for v in HOSTILE)


# -- the REST API -----------------------------------------------------------------------------


@pytest.fixture
async def http(router: Any) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        router.http_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as session:
        yield session


async def post_json(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    """POST ``body``; return the status and the JSON answer (a request line too long for
    the HTTP server is refused before the application sees it: 400 with no JSON)."""
    # ensure_ascii keeps lone surrogates as \ud800 escapes, as a JSON client would send them.
    data = json.dumps(body, ensure_ascii=True).encode()
    async with http.post(path, data=data, headers={"Content-Type": "application/json"}) as r:
        if r.status == 400 and r.content_type != "application/json":
            return r.status, {"error": {"field": "(request line)"}}
        return r.status, await r.json()


API_VALUES = (*HOSTILE, LONE_SURROGATE, "104" + LONE_SURROGATE)


@pytest.mark.parametrize("field", ["agent", "phone_number", "description"])
async def test_api_smartrouting_upsert(router: Any, http: Any, field: str) -> None:
    for value in API_VALUES:
        body = {"phone_number": CALLER, "agent": "104", "description": "note"}
        body[field] = value
        status, reply = await post_json(http, "/v1/smartrouting", body)
        if status == 400:
            assert reply["error"]["field"] == field, (short_id(value), reply)
            assert (await router.store.list_routes(None, 10, 0)).total == 0
            continue
        assert status == 200, (value, status, reply)
        assert field in ("description", "phone_number"), (field, short_id(value))
        if field == "phone_number":
            assert NumberParser("VN").parse(value).key == "104"
        else:
            assert await call(router) == AGENT_104
        route = reply["data"]
        await router.store.delete_route("default", route_id=route["id"])
    # A hostile account in the query string.
    for value in API_VALUES:
        path = f"/v1/smartrouting?account={quote(value.encode('utf-8', 'surrogatepass'))}"
        status, reply = await post_json(http, path, {"phone_number": CALLER, "agent": "104"})
        assert status == 400, short_id(value)
        assert reply["error"]["field"] in ("account", "(request line)"), short_id(value)
    assert (await router.store.list_routes(None, 10, 0)).total == 0


CUSTOMER_FIELDS = ["customer_id", "name", "code", "destination1", "destination4", "vip"]


@pytest.mark.parametrize("field", [*CUSTOMER_FIELDS, "phone_numbers"])
async def test_api_customer_upsert(router: Any, http: Any, field: str) -> None:
    for value in API_VALUES:
        body: dict[str, Any] = {
            "customer_id": "C1",
            "name": "ACME",
            "phone_numbers": [CALLER],
            "code": "1234",
            "destination1": "207",
            "vip": True,
        }
        body[field] = [value] if field == "phone_numbers" else value
        status, reply = await post_json(http, "/v1/customers", body)
        if status == 400:
            assert reply["error"]["field"] == field, (short_id(value), reply)
            assert (await router.store.list_customers(None, 10, 0)).total == 0
            continue
        assert status == 200, (short_id(value), status, reply)
        assert field in ("name", "phone_numbers") or not value.strip(), (field, short_id(value))
        [stored] = (await router.store.list_customers(None, 10, 0)).items
        got = await call(router, CallSpec(callerid=stored.phone_numbers[0]))
        assert got == customer_answer(stored), short_id(value)
        await router.store.delete_customer("default", "C1")


@pytest.mark.parametrize("column", ["customer_id", "name", "code", "destination1", "account"])
async def test_api_customers_import(router: Any, http: Any, column: str) -> None:
    for value in HOSTILE:
        data = csv_text(**{column: value}).encode("utf-8")
        async with http.post("/v1/customers/import", data=data) as r:
            status, reply = r.status, await r.json()
        if status != 200:
            assert status in (400, 422), (short_id(value), status, reply)
            assert (await router.store.list_customers(None, 10, 0)).total == 0
            continue
        assert column == "name" or not value.strip(), (column, short_id(value))
        [stored] = (await router.store.list_customers(None, 10, 0)).items
        spec = CallSpec(callerid=CALLER, script=f"route?account={stored.account}")
        assert await call(router, spec) == customer_answer(stored), short_id(value)
        await router.store.delete_customer(stored.account, stored.customer_id)


# -- the upstream API's answer ----------------------------------------------------------------

API_CALLER, API_NUMBER = "0123456789", "0033123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    yield server
    await server.close()


async def test_upstream_answers_with_hostile_destinations(start_router: Any, fake: Any) -> None:
    router = await start_router(
        default_region="FR",
        upstream=UpstreamSettings(url=fake.url, token=fake.token, negative_ttl_s=0),
        prompt={"attempts": 1},
    )
    # JSON that is not a string: a number or a boolean written out is a plain token (and a
    # true flag); an object or an array written out is not, and is dropped.
    odd: list[tuple[Any, list[str], str]] = [
        ({"a": 1}, ["209"], "0"),
        ([1, 2], ["209"], "0"),
        (1e308, ["1e+308", "209"], "1"),
        (True, ["True", "209"], "1"),
        (None, ["209"], "0"),
    ]
    cases = [(v, ["209"], "0") for v in (*HOSTILE, LONE_SURROGATE)] + odd
    for n, (value, dests, flag) in enumerate(cases):
        number = f"0033123{n:06d}"
        fake.add_number(
            "CL0000", number, destination1=value, destination2="209", vip=value, astreinte=value
        )
        spec = CallSpec(callerid="0" + number[4:], script="route?account=CL0000")
        expected = answer(
            "CUSTOMER",
            **{f"dest{i}": d for i, d in enumerate(dests, start=1)},
            vip=flag,
            oncall=flag,
            customer="CL0000",
            number="+33" + number[4:],
            identified_by="number",
            source="api",
        )
        assert await call(router, spec) == expected, short_id(str(value))
    # Nothing but hostile destinations: a customer with none, sent to the default queues.
    fake.add_number("CL0000", API_NUMBER, destination1="${SHELL(x)}", destination2="1,2")
    spec = CallSpec(callerid=API_CALLER, script="route?account=CL0000")
    assert await call(router, spec) == answer(
        "CUSTOMER",
        customer="CL0000",
        number="+33123456789",
        identified_by="number",
        source="api",
    )


# -- the header block, the AGI URL and the DTMF digits ----------------------------------------


async def test_caller_id_and_name(router: Any) -> None:
    await router.store.set_route("default", CALLER, CALLER_KEY, "104")
    numbers = NumberParser("VN")
    for value in single_line():
        # The name is never used for routing: the caller is recognised as ever.
        assert await call(router, CallSpec(callerid=CALLER, calleridname=value)) == AGENT_104
        # A hostile number is reduced to its dialable characters, or is withheld.
        got = await call(router, CallSpec(callerid=value), [Keypress("")])
        number = numbers.caller(value)
        shown = (number.e164 or number.key) if number is not None else ""
        assert got == answer("UNKNOWN", number=shown, reason="no_code"), short_id(value)
    for value in ("104\nSET VARIABLE X 1", "0911111111\n\n200 result=0"):
        # A line break ends the header line: what follows is not a header, or is a block
        # of its own; either way no command is sent on the strength of it.
        asterisk = Asterisk(port=router.app.agi.port, agiexecfull=True)
        result = await asterisk.call(CallSpec(callerid=value), timeout=10)
        assert result.status in ("", "AGENT", "UNKNOWN")
        assert all(PLAIN.fullmatch(v) for v in result.variables.values())


async def test_agi_url_parameters_and_arguments(router: Any) -> None:
    await router.store.set_route("default", CALLER, CALLER_KEY, "104")
    bad_request = answer("FALLBACK", number=CALLER_KEY, reason="bad_request")
    unknown_script = answer("FALLBACK", number=CALLER_KEY, reason="unknown_script")
    for value in HOSTILE:
        encoded = quote(value.encode("utf-8"), safe="")
        assert await call(router, CallSpec(callerid=CALLER, script=f"route?account={encoded}")) == (
            bad_request
        ), value
        script = f"route/{encoded}" if value.strip("/") else "route"
        got = await call(router, CallSpec(callerid=CALLER, script=script))
        assert got in (unknown_script, AGENT_104), short_id(value)
        if "\n" not in value:
            # A CR at the end of a header line is part of the line ending, not of the value.
            spec = CallSpec(callerid=CALLER, args=(f"account={value}",))
            expected = bad_request if value.rstrip("\r") else AGENT_104
            assert await call(router, spec) == expected, short_id(value)
            # Other parameters are not read at all.
            spec = CallSpec(callerid=CALLER, script=f"route?x={encoded}", args=(value,))
            assert await call(router, spec) == AGENT_104, short_id(value)


async def test_dtmf_digits(start_router: Any) -> None:
    source = DictSource({}, {})
    router = await start_router(
        sources=[source], prompt={"attempts": 1}, codes={"max_failures_per_number": 0}
    )
    for value in single_line():
        got = await call(router, CallSpec(callerid=CALLER), [Keypress(value)])
        assert got == answer(
            "UNKNOWN", number=CALLER_KEY, reason="no_match" if value.strip() else "no_code"
        ), value
    # Only codes of keypad digits were ever looked up (a long run is cut to max_digits).
    assert all(code.isdigit() and code.isascii() for code in source.asked if code != CALLER_KEY)
    # A reply line broken by a line feed: the rest is a line nobody asked for.
    asterisk = Asterisk(port=router.app.agi.port, agiexecfull=True)
    result = await asterisk.call(CallSpec(callerid=CALLER), [Keypress("12\nSET VARIABLE X 1")])
    assert result.status == ""
    assert result.commands == ["ANSWER", "GET DATA agent-pass 5000 8"]


# Customers as the store keeps them are what every path above leads to; a record that
# passed validation reaches the wire as tokens only, whatever else it holds.
async def test_a_stored_customer_with_every_field_at_its_limit(router: Any) -> None:
    customer = Customer(
        account="a" * 64,
        customer_id="C" + ":" * 63,
        name="\u202e" + "${SHELL(x)}" * 18,
        phone_numbers=(CALLER_KEY,),
        code="9" * 32,
        destinations=("Q" * 80, "a.b@c/d+e-f_g", "", "x"),
        vip=True,
        oncall=True,
    )
    await router.store.import_customers([customer])
    got = await call(router, CallSpec(callerid=CALLER, script=f"route?account={'a' * 64}"))
    assert got == answer(
        "CUSTOMER",
        dest1="Q" * 80,
        dest2="a.b@c/d+e-f_g",
        dest4="x",
        vip="1",
        oncall="1",
        customer="C" + ":" * 63,
        number=CALLER_KEY,
        identified_by="number",
        source="local",
    )
