"""The client against the fake API over real HTTP: requests as documented, every answer mapped."""

from __future__ import annotations

import logging
import socket

import pytest

from fastagi_router.errors import UpstreamError
from fastagi_router.phone import NumberParser
from fastagi_router.upstream.client import (
    AiohttpTransport,
    Fields,
    HTTPAnswer,
    UpstreamClient,
    endpoint_url,
    interpret,
)
from fastagi_router.upstream.errors import (
    UpstreamBadAnswer,
    UpstreamBadRequest,
    UpstreamDenied,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.fakes.upstream import FakeUpstream, Fault

FR = NumberParser("FR")
CALLER = FR.caller("01 23 45 67 89")
assert CALLER is not None
API_NUMBER = "0033123456789"


async def test_number_lookup_as_the_document_shows(
    fake: FakeUpstream, client: UpstreamClient
) -> None:
    fake.add_number(
        "CL0000",
        API_NUMBER,
        destination1="207",
        destination2="209",
        destination3="214",
        destination4="216",
        vip=True,
        astreinte="oui",
    )
    customer = await client.by_number("CL0000", CALLER, timeout=2)
    assert customer is not None
    assert customer.destinations == ("207", "209", "214", "216")
    assert (customer.vip, customer.oncall) == (True, True)
    assert customer.account == "CL0000"
    assert customer.phone_numbers == ("+33123456789",)
    [seen] = fake.requests
    assert seen.params == {"customerAccount": "CL0000", "number": API_NUMBER, "format": "json"}
    assert seen.authorization == "Bearer t0k3n"


@pytest.mark.parametrize(
    ("number_format", "sent"),
    [("international", "0033123456789"), ("e164", "+33123456789"), ("national", "0123456789")],
)
async def test_number_formats(
    fake: FakeUpstream, transport: AiohttpTransport, number_format: str, sent: str
) -> None:
    fake.add_number("CL0000", sent, destination1="300")
    client = UpstreamClient(transport, Fields(number_format=number_format))
    customer = await client.by_number("CL0000", CALLER, timeout=2)
    assert customer is not None and customer.destinations[0] == "300"
    assert fake.requests[0].params["number"] == sent


async def test_a_number_that_does_not_parse_is_sent_as_received(
    fake: FakeUpstream, client: UpstreamClient
) -> None:
    extension = FR.caller("104")
    assert extension is not None and extension.e164 is None
    assert await client.by_number("CL0000", extension, timeout=2) is None
    assert fake.requests[0].params["number"] == "104"


async def test_code_lookup(fake: FakeUpstream, client: UpstreamClient) -> None:
    fake.add_code("CL0000", "4242", destination1="sales", vip="1")
    customer = await client.by_code("CL0000", "4242", timeout=2)
    assert customer is not None
    assert customer.destinations == ("sales", "", "", "")
    assert customer.code == "4242" and customer.vip
    assert fake.requests[0].params == {
        "customerAccount": "CL0000",
        "code": "4242",
        "format": "json",
    }


async def test_parameter_and_field_names_are_configurable(
    fake: FakeUpstream, transport: AiohttpTransport
) -> None:
    client = UpstreamClient(transport, Fields(code_param="number", vip_field="isVip"))
    fake.add_number("CL0000", "77", destination1="207", isVip="yes", vip="no")
    customer = await client.by_code("CL0000", "77", timeout=2)
    assert customer is not None and customer.vip
    renamed = UpstreamClient(transport, Fields(number_param="tel"))
    # The fake knows only the documented name: a wrong name is the API's 400.
    with pytest.raises(UpstreamBadRequest):
        await renamed.by_number("CL0000", CALLER, timeout=2)
    assert fake.requests[-1].params["tel"] == API_NUMBER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (1, True),
        ("1", True),
        ("yes", True),
        ("Oui", True),
        ("true", True),
        (" TRUE ", True),
        (False, False),
        (0, False),
        ("0", False),
        ("non", False),
        ("", False),
        (None, False),
        ("maybe", False),
        ([1], False),
    ],
)
async def test_flags_are_read_leniently(
    fake: FakeUpstream, client: UpstreamClient, value: object, expected: bool
) -> None:
    fake.add_number("CL0000", API_NUMBER, destination1="207", vip=value, astreinte=value)
    customer = await client.by_number("CL0000", CALLER, timeout=2)
    assert customer is not None
    assert (customer.vip, customer.oncall) == (expected, expected)


@pytest.mark.parametrize(
    "fault",
    [
        None,  # the fake's 404 for a number it does not know
        Fault(body=b"{}"),
        Fault(body=b""),
        Fault(body=b"null"),
        Fault(body=b"[]"),
        Fault(body=b'{"destination1": "", "vip": true}'),
        Fault(status=204, body=b""),
    ],
)
async def test_not_found(fake: FakeUpstream, client: UpstreamClient, fault: Fault | None) -> None:
    if fault is not None:
        fake.faults.append(fault)
    assert await client.by_number("CL0000", CALLER, timeout=2) is None


async def test_empty_object_for_unknown_callers(fake: FakeUpstream, client: UpstreamClient) -> None:
    fake.not_found_status = 200
    assert await client.by_number("CL0000", CALLER, timeout=2) is None


async def test_unsafe_destinations_are_dropped_and_logged(
    fake: FakeUpstream, client: UpstreamClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_number(
        "CL0000",
        API_NUMBER,
        destination1="207",
        destination2="209,hangup",
        destination3=214,
        destination4="${EVIL}",
    )
    with caplog.at_level(logging.WARNING, "fastagi_router.upstream"):
        customer = await client.by_number("CL0000", CALLER, timeout=2, tag="1700.1")
    assert customer is not None
    assert customer.destinations == ("207", "214", "", "")
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2
    assert "[1700.1]" in dropped[0] and "destination2" in dropped[0]
    assert "destination4" in dropped[1]


async def test_only_unsafe_destinations_still_identify_the_caller(
    fake: FakeUpstream, client: UpstreamClient
) -> None:
    fake.add_number("CL0000", API_NUMBER, destination1="a b", vip=1)
    customer = await client.by_number("CL0000", CALLER, timeout=2)
    assert customer is not None
    assert customer.destinations == ("", "", "", "") and customer.vip


async def test_403_when_the_token_lacks_the_account(
    fake: FakeUpstream, client: UpstreamClient
) -> None:
    with pytest.raises(UpstreamDenied) as caught:
        await client.by_number("CL9999", CALLER, timeout=2)
    assert caught.value.reason == "upstream_denied"
    assert caught.value.status == 403


async def test_403_with_a_wrong_token(fake: FakeUpstream) -> None:
    transport = AiohttpTransport.open(fake.url, "not-the-token", max_connections=1)
    try:
        with pytest.raises(UpstreamDenied):
            await UpstreamClient(transport, Fields()).by_number("CL0000", CALLER, timeout=2)
    finally:
        await transport.close()


@pytest.mark.parametrize("status", [500, 502, 503, 429, 302])
async def test_error_statuses_are_unavailable(
    fake: FakeUpstream, client: UpstreamClient, status: int
) -> None:
    fake.faults.append(Fault(status=status))
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.by_number("CL0000", CALLER, timeout=2)
    assert caught.value.status == status
    assert caught.value.reason == "upstream_unavailable"


async def test_reset_is_unavailable(fake: FakeUpstream, client: UpstreamClient) -> None:
    # aiohttp retries a GET once when a pooled connection is reset: reset every time.
    fake.always = Fault(reset=True)
    with pytest.raises(UpstreamUnavailable, match="cannot reach"):
        await client.by_number("CL0000", CALLER, timeout=2)


async def test_body_cut_short_is_unavailable(fake: FakeUpstream, client: UpstreamClient) -> None:
    fake.add_number("CL0000", API_NUMBER, destination1="207", destination2="209")
    fake.faults.append(Fault(truncate=True))
    with pytest.raises(UpstreamUnavailable, match="cut short"):
        await client.by_number("CL0000", CALLER, timeout=2)


async def test_slow_answer_is_a_timeout(fake: FakeUpstream, client: UpstreamClient) -> None:
    fake.faults.append(Fault(latency=5))
    with pytest.raises(UpstreamTimeout) as caught:
        await client.by_number("CL0000", CALLER, timeout=0.05)
    assert caught.value.reason == "upstream_timeout"


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = AiohttpTransport.open(f"http://127.0.0.1:{port}", "t", max_connections=1)
    try:
        with pytest.raises(UpstreamUnavailable):
            await UpstreamClient(transport, Fields()).by_number("CL0000", CALLER, timeout=2)
    finally:
        await transport.close()


@pytest.mark.parametrize(
    "fault",
    [
        Fault(body=b'{"destination1": "207", "destin'),
        Fault(body=b"<html><body>Please log in</body></html>", content_type="text/html"),
        Fault(body=b'["207", "209"]'),
        Fault(body=b'"207"'),
        Fault(body=b"\xff\xfe\x00garbage"),
        Fault(body=b'{"destination1": "' + b"2" * 70000 + b'"}'),
    ],
    ids=["truncated-json", "html", "list", "string", "binary", "too-large"],
)
async def test_malformed_bodies_are_bad_answers(
    fake: FakeUpstream, client: UpstreamClient, fault: Fault
) -> None:
    fake.faults.append(fault)
    with pytest.raises(UpstreamBadAnswer) as caught:
        await client.by_number("CL0000", CALLER, timeout=2)
    assert caught.value.reason == "upstream_bad_answer"


async def test_json_under_another_content_type_is_read(
    fake: FakeUpstream, client: UpstreamClient
) -> None:
    # PHP back ends often label JSON text/html; the body decides, the shape is still checked.
    fake.add_number("CL0000", API_NUMBER, destination1="207")
    fake.faults.append(Fault(content_type="text/html"))
    customer = await client.by_number("CL0000", CALLER, timeout=2)
    assert customer is not None and customer.destinations[0] == "207"


async def test_the_token_never_reaches_the_logs(
    fake: FakeUpstream, transport: AiohttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    client = UpstreamClient(transport, Fields())
    fake.add_number("CL0000", API_NUMBER, destination1="bad value")
    caplog.set_level(logging.DEBUG)
    await client.by_number("CL0000", CALLER, timeout=2)
    for fault in (Fault(status=500), Fault(status=400), Fault(body=b"<html>"), Fault(latency=1)):
        fake.faults.append(fault)
        with pytest.raises(UpstreamError):
            await client.by_number("CL0000", CALLER, timeout=0.2)
    with pytest.raises(UpstreamDenied) as denied:
        await client.by_number("CL9999", CALLER, timeout=2)
    assert caplog.records
    assert fake.token not in caplog.text
    assert fake.token not in str(denied.value)


def test_endpoint_url() -> None:
    assert endpoint_url("https://x.example") == "https://x.example/api/v1/smartRoutings"
    assert endpoint_url("https://x.example/") == "https://x.example/api/v1/smartRoutings"
    assert endpoint_url("https://x.example/crm") == "https://x.example/crm/api/v1/smartRoutings"
    full = "https://x.example/api/v1/smartRoutings"
    assert endpoint_url(full) == full


def test_interpret_is_pure() -> None:
    answer = interpret(
        HTTPAnswer(200, "application/json", b'{"destination2": "9"}'), "A1", Fields()
    )
    assert answer.customer is not None
    assert answer.customer.destinations == ("9", "", "", "")
    with pytest.raises(UpstreamDenied):
        interpret(HTTPAnswer(401, "", b""), "A1", Fields())
