"""``/v1/smartrouting``: listing, lookup by id or any form of a number, upsert, delete, and
the input checks (400 with the field, never 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import Api

ROUTES = "/v1/smartrouting"


async def add(api: Api, phone: str, agent: str, **extra: Any) -> dict[str, Any]:
    reply = await api.post(ROUTES, json={"phone_number": phone, "agent": agent, **extra})
    assert reply.status == 200, reply.body
    assert reply.json["message"] == "successfully"
    record: dict[str, Any] = reply.json["data"]
    return record


async def test_insert_returns_the_whole_record(api: Api) -> None:
    record = await add(api, "0899990988", "104")
    assert record == {
        "id": 1,
        "account": "default",
        "phone_number": "0899990988",
        "number_key": "+84899990988",
        "agent": "104",
        "description": "104",
        "origin": "manual",
        "created_at": record["created_at"],
        "updated_at": record["created_at"],
        "last_seen_at": None,
    }


@pytest.mark.parametrize("form", ["0899990988", "84899990988", "+84899990988", "0084899990988"])
async def test_every_form_of_a_number_finds_the_record(api: Api, form: str) -> None:
    await add(api, "0899990988", "104")
    reply = await api.get(f"{ROUTES}/{form.replace('+', '%2B')}")
    assert reply.status == 200
    assert reply.json["id"] == 1 and reply.json["agent"] == "104"
    reply = await api.get(f"{ROUTES}/{form}")  # a bare '+' in a path is a plus
    assert reply.json["id"] == 1


async def test_insert_of_a_known_number_in_another_form_updates_it(api: Api) -> None:
    first = await add(api, "0899990988", "104")
    second = await add(api, "+84 899 990 988", "105")
    assert second["id"] == first["id"]
    assert second["agent"] == "105" and second["phone_number"] == "+84 899 990 988"
    assert second["created_at"] == first["created_at"]
    listing = (await api.get(ROUTES)).json
    assert listing["total"] == 1


async def test_description_defaults_to_the_agent_and_a_note_is_kept(api: Api) -> None:
    assert (await add(api, "0899990988", "104"))["description"] == "104"
    assert (await add(api, "0899990988", "105"))["description"] == "105"
    assert (await add(api, "0899990988", "106", description="VIP desk"))["description"] == (
        "VIP desk"
    )
    kept = await add(api, "0899990988", "107")
    assert (kept["agent"], kept["description"]) == ("107", "VIP desk")


async def test_id_or_phone_number_in_the_path(api: Api) -> None:
    """1-6 digits without a leading zero: an id; anything else: a phone number."""
    await add(api, "0899990988", "104")
    extension = await add(api, "104", "200")  # an internal extension as the number
    assert extension["number_key"] == "104"
    assert (await api.get(f"{ROUTES}/1")).json["agent"] == "104"
    assert (await api.get(f"{ROUTES}/{extension['id']}")).json["agent"] == "200"
    # "104" is an id (there is no route 104), not the extension's number.
    reply = await api.get(f"{ROUTES}/104")
    assert reply.status == 404 and reply.error["code"] == "not_found"
    # A leading zero makes a phone number; seven digits too.
    assert (await api.get(f"{ROUTES}/0104")).status == 404
    assert (await api.get(f"{ROUTES}/1234567")).status == 404
    reply = await api.get(f"{ROUTES}/not-a-number")
    assert reply.status == 400 and reply.error["field"] == "id"


async def test_delete_by_id_and_by_number(api: Api) -> None:
    await add(api, "0899990988", "104")
    await add(api, "0899990989", "105")
    assert (await api.delete(f"{ROUTES}/1")).json == {"message": "successfully"}
    assert (await api.delete(f"{ROUTES}/%2B84899990989")).json == {"message": "successfully"}
    reply = await api.delete(f"{ROUTES}/1")
    assert reply.status == 404 and reply.error["code"] == "not_found"
    assert (await api.get(ROUTES)).json["total"] == 0


async def test_listing_pages(api: Api) -> None:
    for n in range(12):
        await add(api, f"08999909{n:02d}", f"1{n:02d}")
    first = (await api.get(ROUTES)).json
    assert (first["limit"], first["offset"], first["total"]) == (10, 0, 12)
    assert [r["id"] for r in first["data"]] == list(range(1, 11))
    rest = (await api.get(ROUTES, params={"limit": "5", "offset": "10"})).json
    assert [r["id"] for r in rest["data"]] == [11, 12]
    assert (rest["limit"], rest["offset"]) == (5, 10)
    empty = (await api.get(ROUTES, params={"limit": "0"})).json
    assert (empty["data"], empty["total"]) == ([], 12)
    assert (await api.get(ROUTES, params={"offset": "99999"})).json["data"] == []
    # A listing shows where each record came from and when a call last confirmed it.
    assert first["data"][0]["origin"] == "manual" and first["data"][0]["last_seen_at"] is None


async def test_a_large_limit_is_clamped_and_said(api_factory: Any) -> None:
    api = await api_factory(http={"max_limit": 3})
    for n in range(5):
        await add(api, f"08999909{n:02d}", "104")
    reply = (await api.get(ROUTES, params={"limit": "1000000"})).json
    assert reply["limit"] == 3 and len(reply["data"]) == 3
    # The largest values the document allows are served; one more is refused.
    reply = (await api.get(ROUTES, params={"limit": "9" * 18, "offset": "9" * 18})).json
    assert reply["limit"] == 3 and reply["data"] == [] and reply["total"] == 5
    assert (await api.get(ROUTES, params={"offset": str(10**18)})).status == 400


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "ten"),
        ("limit", "-1"),
        ("offset", "-5"),
        ("offset", "1.5"),
        ("limit", "9" * 40),
        ("limit", " 5"),
    ],
)
async def test_bad_paging_is_400(api: Api, name: str, value: str) -> None:
    reply = await api.get(ROUTES, params={name: value})
    assert reply.status == 400
    assert reply.error == {
        "code": "invalid_value",
        "message": reply.error["message"],
        "field": name,
    }


async def test_unknown_or_repeated_query_parameters_are_400(api: Api) -> None:
    reply = await api.get(ROUTES, params={"acount": "CL0000"})
    assert reply.status == 400 and reply.error["code"] == "unknown_parameter"
    reply = await api.get(ROUTES + "?limit=1&limit=2")
    assert reply.status == 400 and reply.error["field"] == "limit"
    for name in ("limit", "offset", "account"):
        reply = await api.get(f"{ROUTES}?{name}=")
        assert reply.status == 400 and reply.error["field"] == name, name
    reply = await api.post("/v1/customers/import?partial=", data=b"")
    assert reply.status == 400 and reply.error["field"] == "partial"
    reply = await api.get("/api/v1/smartRoutings?customerAccount=CL0000&number=0899990988&format=")
    assert reply.status == 400 and reply.error["field"] == "format"


async def test_the_account_parameter_scopes_every_endpoint(api: Api) -> None:
    await add(api, "0899990988", "104")
    reply = await api.post(
        ROUTES, params={"account": "CL0000"}, json={"phone_number": "0899990988", "agent": "300"}
    )
    assert reply.json["data"]["account"] == "CL0000"
    assert [r["agent"] for r in (await api.get(ROUTES)).json["data"]] == ["104"]
    listed = (await api.get(ROUTES, params={"account": "CL0000"})).json["data"]
    assert [r["agent"] for r in listed] == ["300"]
    got = await api.get(f"{ROUTES}/0899990988", params={"account": "CL0000"})
    assert got.json["agent"] == "300"
    assert (await api.get(f"{ROUTES}/1", params={"account": "CL0000"})).status == 404
    deleted = await api.delete(f"{ROUTES}/0899990988", params={"account": "CL0000"})
    assert deleted.status == 200
    assert (await api.get(f"{ROUTES}/0899990988")).json["agent"] == "104"
    reply = await api.get(ROUTES, params={"account": "two words"})
    assert reply.status == 400 and reply.error["field"] == "account"


async def test_an_empty_account_is_400_not_the_default_account(api: Api) -> None:
    await add(api, "0899990988", "104")
    route = {"phone_number": "0899990988", "agent": "300"}
    for method, path, body in [
        ("GET", ROUTES, None),
        ("POST", ROUTES, route),
        ("GET", f"{ROUTES}/1", None),
        ("DELETE", f"{ROUTES}/1", None),
    ]:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        reply = await api.call(method, f"{path}?account=", **kwargs)
        assert reply.status == 400, (method, path, reply.body)
        assert reply.error["field"] == "account"
    assert (await api.get(f"{ROUTES}/1")).json["agent"] == "104"


# -- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent",
    ["104&105", "104,105", "104|105", "Local/1(x)", "${EVIL}", "1{04", "'104'", '"104"',
     "1 04", "104\n", "104\x00", "\t104", "x" * 81, ""],
)  # fmt: skip
async def test_agent_must_be_a_plain_dialplan_token(api: Api, agent: str) -> None:
    reply = await api.post(ROUTES, json={"phone_number": "0899990988", "agent": agent})
    assert reply.status == 400
    assert reply.error["field"] == "agent"
    assert "agent" in reply.error["message"]
    assert (await api.get(ROUTES)).json["total"] == 0


async def test_the_message_says_which_characters_are_refused(api: Api) -> None:
    reply = await api.post(ROUTES, json={"phone_number": "0899990988", "agent": "10&4,5"})
    assert "&" in reply.error["message"] and "," in reply.error["message"]


@pytest.mark.parametrize(
    "phone", ["hello", "anonymous", "", "   ", "08999&09", "1" * 40, "+84 " + " " * 70 + "1"]
)
async def test_phone_number_must_parse(api: Api, phone: str) -> None:
    reply = await api.post(ROUTES, json={"phone_number": phone, "agent": "104"})
    assert reply.status == 400
    assert reply.error["field"] == "phone_number"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"agent": "104"}, "phone_number", "missing_value"),
        ({"phone_number": "0899990988"}, "agent", "missing_value"),
        ({"phone_number": 899990988, "agent": "104"}, "phone_number", "invalid_value"),
        ({"phone_number": "0899990988", "agent": 104}, "agent", "invalid_value"),
        ({"phone_number": "0899990988", "agent": ["104"]}, "agent", "invalid_value"),
        ({"phone_number": "0899990988", "agent": "104", "agnet": "x"}, "agnet", "unknown_field"),
        ({"phone_number": "0899990988", "agent": "104", "description": 5}, "description",
         "invalid_value"),
        ({"phone_number": "0899990988", "agent": "104", "description": "x" * 201},
         "description", "invalid_value"),
        ({"phone_number": "0899990988", "agent": "104", "description": "a\nb"}, "description",
         "invalid_value"),
        ({"phone_number": "0899990988", "agent": "104", "description": "\ud800"},
         "description", "invalid_value"),
    ],
)  # fmt: skip
async def test_bad_fields_name_the_field(
    api: Api, body: dict[str, Any], field: str, code: str
) -> None:
    reply = await api.post(ROUTES, data=json.dumps(body).encode())
    assert reply.status == 400
    assert reply.error["code"] == code and reply.error["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b"[]",
        b'"text"',
        b"null",
        b"\xff\xfe{}",
        b"[" * 30000 + b"]" * 30000,
        b'{"phone_number": NaN}',
    ],
)
async def test_bad_json_is_400_never_500(api: Api, body: bytes) -> None:
    reply = await api.post(ROUTES, data=body, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.error["code"] in ("invalid_json", "invalid_value")


async def test_a_body_over_the_limit_is_413(api_factory: Any) -> None:
    api = await api_factory(http={"max_body_bytes": 2048})
    body = json.dumps({"phone_number": "0899990988", "agent": "104", "description": "x" * 4096})
    reply = await api.post(ROUTES, data=body.encode())
    assert reply.status == 413
    assert reply.error["code"] == "body_too_large"
    # Chunked, without a Content-Length, too.

    async def chunks() -> Any:
        for _ in range(8):
            yield b" " * 512

    reply = await api.post(ROUTES, data=chunks())
    assert reply.status == 413
    # Under the limit, fine.
    assert (await add(api, "0899990988", "104"))["agent"] == "104"
