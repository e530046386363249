"""Every example of both seed API documents, replayed against the running application.

The documents are copied verbatim into ``seeds/`` (``000``: the smart-routing API,
``003``: the Encom customer lookup). Their examples are read out of the text (nothing is
retyped here), their placeholders substituted (``{{API_HOST}}``, ``{{TOKEN}}``, ``{{id}}``,
``{token}``, the ``X`` digits of the example numbers), and each request is sent with its
method, path, query, headers and body. Each answer must have the documented shape: every
documented key, with the documented value where the store was seeded to give it.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from fastagi_router.model import Customer
from tests.api.conftest import Api
from tests.conftest import CL0000_TOKEN

SEEDS = Path(__file__).parent / "seeds"
SMARTROUTING = (SEEDS / "000_smartrouting.txt").read_text(encoding="utf-8")
LOOKUP = (SEEDS / "003_customer_lookup.txt").read_text(encoding="utf-8")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_the_copies_are_the_seed_documents() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "seeds"
    originals = sorted(shared.glob("00[03]_*.txt")) if shared.is_dir() else []
    if not originals:
        pytest.skip("the shared seed folder is not beside the repository")
    assert [p.read_text(encoding="utf-8") for p in originals] == [SMARTROUTING, LOOKUP]


def assert_documented(documented: Any, actual: Any, where: str = "body") -> None:
    """``actual`` has every key of ``documented``, with its type and value; timestamps only
    need the documented format, and ids are integers where the document shows ``"1"``."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict), (where, actual)
        for key, value in documented.items():
            assert key in actual, f"{where}: no {key!r} in {actual}"
            if key in ("created_at", "updated_at"):
                assert TIMESTAMP.fullmatch(actual[key]), (where, key, actual[key])
            elif key == "id":
                # The document shows "1" (insert) and 1 (listing): ids are always integers.
                assert isinstance(actual[key], int) and not isinstance(actual[key], bool)
                assert str(actual[key]) == str(value), (where, actual[key], value)
            else:
                assert_documented(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list) and len(actual) == len(documented), (where, actual)
        for index, (doc_item, item) in enumerate(zip(documented, actual, strict=True)):
            assert_documented(doc_item, item, f"{where}[{index}]")
    else:
        assert type(actual) is type(documented) and actual == documented, (
            where,
            documented,
            actual,
        )


# -- the smart-routing document -------------------------------------------------------------


def curl_examples(text: str) -> list[tuple[dict[str, Any], Any]]:
    """Each ``shell`` block's curl request, with the ``json`` block that follows it."""
    blocks = list(re.finditer(r"```(\w*)\n(.*?)```", text, re.DOTALL))
    examples = []
    for index, block in enumerate(blocks):
        if block.group(1) != "shell":
            continue
        response = next(b for b in blocks[index + 1 :] if b.group(1) == "json")
        examples.append((parse_curl(block.group(2)), json.loads(response.group(2))))
    return examples


def parse_curl(command: str) -> dict[str, Any]:
    """Method, URL, headers and body of one curl command.

    The insert example lacks the line continuation before ``--data-raw`` (a typo of the
    document: as printed, a shell would run the body as a second command); the block is one
    command, so every line break is read as a continuation.
    """
    words = shlex.split(command.replace("\\\n", " ").replace("\n", " "))
    assert words[0] == "curl", words
    request: dict[str, Any] = {"method": "GET", "headers": {}, "body": None, "url": None}
    iterator = iter(words[1:])
    for word in iterator:
        if word == "-L":
            continue
        if word in ("-X", "--request"):
            request["method"] = next(iterator)
        elif word in ("-H", "--header"):
            name, _, value = next(iterator).partition(":")
            request["headers"][name.strip()] = value.strip()
        elif word in ("--data-raw", "--data", "-d"):
            request["body"] = next(iterator)
        elif word == "--url":
            request["url"] = next(iterator)
        else:
            assert not word.startswith("-"), f"unknown curl option {word}"
            request["url"] = word
    return request


def substitute(text: str, token: str, route_id: int) -> str:
    return (
        text.replace("https://{{API_HOST}}", "")
        .replace("{{TOKEN}}", token)
        .replace("{{id}}", str(route_id))
    )


async def test_every_smartrouting_example(api: Api) -> None:
    examples = curl_examples(SMARTROUTING)
    assert [e[0]["method"] for e in examples] == ["GET", "GET", "POST", "DELETE"]
    # The store holds what the listing example shows: ids 1 and 2, agents 101 and 102.
    await api.store.set_route("default", "0899990988", "+84899990988", "101")
    await api.store.set_route("default", "0899990989", "+84899990989", "102")
    token = "test-admin-token-0123456789"
    for request, documented in examples:
        url = substitute(request["url"], token, route_id=1)
        headers = {k: substitute(v, token, 1) for k, v in request["headers"].items()}
        body = request["body"].encode() if request["body"] is not None else None
        reply = await api.call(request["method"], url, token=None, headers=headers, data=body)
        assert reply.status == 200, (request, reply.body)
        assert_documented(documented, reply.json, f"{request['method']} {url}")
    # The insert updated record 1 (upsert); the delete removed it.
    remaining = (await api.get("/v1/smartrouting")).json
    assert [r["phone_number"] for r in remaining["data"]] == ["0899990989"]


async def test_smartrouting_records_carry_agent_and_description(api: Api) -> None:
    """The listing documents ``description``, the insert ``agent``: every record has both."""
    examples = curl_examples(SMARTROUTING)
    documented_keys = set()
    for _request, documented in examples:
        record = documented.get("data", documented)
        if isinstance(record, list):
            record = record[0]
        if "phone_number" in record:
            documented_keys |= set(record)
    assert {"agent", "description", "id", "phone_number", "created_at"} <= documented_keys
    await api.post("/v1/smartrouting", json={"phone_number": "0899990988", "agent": "104"})
    listed = (await api.get("/v1/smartrouting")).json["data"][0]
    got = (await api.get("/v1/smartrouting/0899990988")).json
    for record in (listed, got):
        assert documented_keys <= set(record)
        assert record["agent"] == record["description"] == "104"


# -- the customer-lookup document ----------------------------------------------------------

#: The example numbers hide their digits as X; these take their place.
REAL_NUMBER = "0033142685300"
ENCOM = "https://clients.encom-conseil.fr"


def lookup_examples(text: str) -> list[dict[str, Any]]:
    """The curl, PHP and Python requests of the document."""
    examples = []
    for match in re.finditer(
        r"curl --request (\w+) \\\s*--url '([^']+)' \\\s*--header '([^']+)'", text
    ):
        name, _, value = match.group(3).partition(":")
        examples.append(
            {"from": "curl", "method": match.group(1), "url": match.group(2), name: value}
        )
    php_url = re.search(r'CURLOPT_URL => "([^"]+)"', text)
    php_method = re.search(r'CURLOPT_CUSTOMREQUEST => "(\w+)"', text)
    php_header = re.search(r'CURLOPT_HTTPHEADER => \[\s*"([^"]+)"', text)
    if php_url and php_method and php_header:
        name, _, value = php_header.group(1).partition(":")
        examples.append(
            {"from": "php", "method": php_method.group(1), "url": php_url.group(1), name: value}
        )
    host = re.search(r'HTTPSConnection\("([^"]+)"\)', text)
    python_header = re.search(r"'Authorization': \"([^\"]+)\"", text)
    for match in re.finditer(r'conn\.request\("(\w+)", "([^"]+)"', text):
        assert host and python_header
        examples.append(
            {
                "from": "python",
                "method": match.group(1),
                "url": f"https://{host.group(1)}{match.group(2)}",
                "Authorization": python_header.group(1),
            }
        )
    return examples


def lookup_responses(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """The json answers and the raw answers shown by the document."""
    # The document's code fences are unbalanced; its answers are found by their content.
    documents = [json.loads(m) for m in re.findall(r"^\{\n[^{}]*\n\}$", text, re.MULTILINE)]
    raw = re.findall(r"^[0-9]+(?:,[0-9]+)+$", text, re.MULTILINE)
    return documents, raw


def localise(url: str) -> str:
    """The document's URL on the test server, its X digits filled in."""
    path = url.removeprefix(ENCOM)
    match = re.search(r"number=([0-9X]+)", path)
    assert match, url
    placeholder = match.group(1)
    assert len(placeholder) == len(REAL_NUMBER)
    filled = "".join(r if p == "X" else p for p, r in zip(placeholder, REAL_NUMBER, strict=True))
    assert filled == REAL_NUMBER, (placeholder, REAL_NUMBER)
    return path.replace(placeholder, filled)


@pytest.fixture
async def encom(api: Api) -> Api:
    await api.store.upsert_customer(
        Customer(
            account="CL0000",
            customer_id="E1",
            name="Example",
            phone_numbers=("+33142685300",),
            code="4321",
            destinations=("207", "209", "214", "216"),
            vip=True,
        )
    )
    return api


async def test_every_lookup_example(encom: Api) -> None:
    examples = lookup_examples(LOOKUP)
    assert [e["from"] for e in examples] == ["curl", "php", "python"]
    documents, raw = lookup_responses(LOOKUP)
    single, every = documents
    assert set(every) == {"destination1", "destination2", "destination3", "destination4"}
    for example in examples:
        headers = {
            name: value.replace("{token}", CL0000_TOKEN)
            for name, value in example.items()
            if name.lower() == "authorization"
        }
        reply = await encom.call(
            example["method"], localise(example["url"]), token=None, headers=headers
        )
        assert reply.status == 200, (example, reply.body)
        body = reply.json
        assert_documented(every, body, example["from"])
        # This product's extension: vip and on-call ("astreinte") beside the destinations.
        assert set(body) == {*every, "vip", "astreinte"}
        assert (body["vip"], body["astreinte"]) == (True, False)

    url = localise(examples[0]["url"])
    # "Si une des quatre destinations ... est explicitement précisée": only that one.
    reply = await encom.get(url + "&destination=1", token=CL0000_TOKEN)
    assert_documented(single, reply.json)
    assert set(reply.json) == {*single, "vip", "astreinte"}
    # "format/raw": the values comma-separated.
    reply = await encom.get(url + "&format=raw", token=CL0000_TOKEN)
    assert reply.content_type == "text/plain"
    assert [reply.text] == raw
    # "400 bad request si la requête est mal-formulée".
    reply = await encom.get(url.replace("customerAccount=CL0000&", ""), token=CL0000_TOKEN)
    assert reply.status == 400 and reply.error["field"] == "customerAccount"
    # "403 ... si l'utilisateur n'a pas les droits suffisants sur le compte client".
    reply = await encom.get(url.replace("CL0000", "CL0001"), token=CL0000_TOKEN)
    assert reply.status == 403 and reply.error["code"] == "forbidden"
