"""``/v1/customers``: records with the CSV's fields, and the CSV import with its report."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from fastagi_router.csvio import COLUMNS
from tests.api.conftest import DOC, Api, validate
from tests.conftest import CL0000_TOKEN, READER_TOKEN

HEADER = ",".join(COLUMNS)
ACME = {
    "name": "ACME",
    "phone_numbers": ["0899990988", "+84 899 990 977"],
    "code": "1234",
    "destination1": "207",
    "destination2": "209",
    "destination3": "214",
    "destination4": "216",
    "vip": True,
    "oncall": False,
}


def csv(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


async def test_put_get_list_delete(api: Api) -> None:
    reply = await api.put("/v1/customers/C1", json=ACME)
    assert reply.status == 200 and reply.json["message"] == "successfully"
    expected = {
        **ACME,
        "account": "default",
        "customer_id": "C1",
        "phone_numbers": ["+84899990977", "+84899990988"],
    }
    assert reply.json["data"] == expected
    assert (await api.get("/v1/customers/C1")).json == expected
    listing = (await api.get("/v1/customers")).json
    assert listing == {"data": [expected], "limit": 10, "offset": 0, "total": 1}
    assert (await api.delete("/v1/customers/C1")).json == {"message": "successfully"}
    reply = await api.get("/v1/customers/C1")
    assert reply.status == 404 and reply.error["field"] == "customer_id"
    assert (await api.delete("/v1/customers/C1")).status == 404


async def test_post_names_the_customer_in_the_body(api: Api) -> None:
    reply = await api.post("/v1/customers", json={**ACME, "customer_id": "C9"})
    assert reply.json["data"]["customer_id"] == "C9"
    reply = await api.post("/v1/customers", json=ACME)
    assert reply.status == 400 and reply.error == {
        "code": "missing_value",
        "message": reply.error["message"],
        "field": "customer_id",
    }


async def test_an_upsert_replaces_the_whole_record(api: Api) -> None:
    await api.put("/v1/customers/C1", json=ACME)
    reply = await api.put("/v1/customers/C1", json={"destination1": "300"})
    data = reply.json["data"]
    assert data["phone_numbers"] == [] and data["code"] is None and data["destination2"] == ""
    assert data["vip"] is False and data["destination1"] == "300"


async def test_a_fetched_record_can_be_sent_back(api: Api) -> None:
    await api.put("/v1/customers/C1", json=ACME, params={"account": "CL0000"})
    record = (await api.get("/v1/customers/C1", params={"account": "CL0000"})).json
    record["name"] = "ACME SA"
    reply = await api.put("/v1/customers/C1", json=record, params={"account": "CL0000"})
    assert reply.json["data"] == record
    reply = await api.put("/v1/customers/C1", json=record)  # the default account
    assert reply.status == 400 and reply.error["field"] == "account"
    reply = await api.put("/v1/customers/C2", json=record, params={"account": "CL0000"})
    assert reply.status == 400 and reply.error["field"] == "customer_id"


async def test_null_fields_are_as_the_document_says(api: Api) -> None:
    """Every field may be null in an upsert (as absent), but POST needs a customer_id."""
    nulls = dict.fromkeys(DOC["components"]["schemas"]["CustomerInput"]["properties"])
    validate({"$ref": "#/components/schemas/CustomerInput"}, nulls)
    reply = await api.put("/v1/customers/C1", json=nulls)
    assert reply.status == 200, reply.body
    assert reply.json["data"]["account"] == "default" and reply.json["data"]["code"] is None
    post = DOC["paths"]["/v1/customers"]["post"]["requestBody"]["content"]["application/json"]
    with pytest.raises(jsonschema.ValidationError):
        validate(post["schema"], nulls)
    reply = await api.post("/v1/customers", json=nulls)
    assert reply.status == 400 and reply.error["field"] == "customer_id"
    validate(post["schema"], {**nulls, "customer_id": "C2"})
    assert (await api.post("/v1/customers", json={**nulls, "customer_id": "C2"})).status == 200


async def test_a_customer_named_import(api: Api) -> None:
    """Its path is the import's: POST imports, the other methods serve the customer."""
    reply = await api.put("/v1/customers/import", json={"name": "Import Ltd"})
    assert reply.status == 200 and reply.json["data"]["customer_id"] == "import"
    assert (await api.get("/v1/customers/import")).json["name"] == "Import Ltd"
    reply = await api.post("/v1/customers/import", data=csv("default,C1,A,,,q,,,,0,0"))
    assert reply.json["imported"] == 1
    reply = await api.call("PATCH", "/v1/customers/import")
    assert reply.status == 405
    assert set(reply.headers["Allow"].split(",")) == {"GET", "PUT", "DELETE", "POST"}
    assert (await api.delete("/v1/customers/import")).status == 200
    assert (await api.get("/v1/customers/import")).status == 404


async def test_the_account_filter_and_the_pages(api: Api) -> None:
    for n in range(3):
        await api.put(f"/v1/customers/A{n}", json={}, params={"account": "CL0000"})
    await api.put("/v1/customers/B0", json={})
    everyone = (await api.get("/v1/customers")).json
    assert [(c["account"], c["customer_id"]) for c in everyone["data"]] == [
        ("CL0000", "A0"),
        ("CL0000", "A1"),
        ("CL0000", "A2"),
        ("default", "B0"),
    ]
    page = (await api.get("/v1/customers", params={"account": "CL0000", "limit": "2"})).json
    assert [c["customer_id"] for c in page["data"]] == ["A0", "A1"] and page["total"] == 3
    page = (await api.get("/v1/customers", params={"account": "CL0000", "offset": "2"})).json
    assert [c["customer_id"] for c in page["data"]] == ["A2"]
    # An empty account is not "every account": a client that lost its account is told.
    reply = await api.get("/v1/customers?account=")
    assert reply.status == 400 and reply.error["field"] == "account"


async def test_a_number_of_another_customer_is_a_conflict(api: Api) -> None:
    await api.put("/v1/customers/C1", json=ACME)
    reply = await api.put("/v1/customers/C2", json={"phone_numbers": ["+84899990988"]})
    assert reply.status == 409
    assert reply.error["code"] == "conflict" and reply.error["field"] == "phone_numbers"
    assert "C1" in reply.error["message"]
    reply = await api.put("/v1/customers/C2", json={"code": "1234"})
    assert reply.status == 409 and reply.error["field"] == "code"
    # Another account may hold the same number.
    reply = await api.put(
        "/v1/customers/C2", json={"phone_numbers": ["0899990988"]}, params={"account": "CL0000"}
    )
    assert reply.status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"destination1": "207&208"}, "destination1"),
        ({"destination4": "q,1"}, "destination4"),
        ({"destination2": "Queue(x)"}, "destination2"),
        ({"destination3": "a b"}, "destination3"),
        ({"destination1": 207}, "destination1"),
        ({"phone_numbers": ["hello"]}, "phone_numbers"),
        ({"phone_numbers": "0899990988"}, "phone_numbers"),
        ({"phone_numbers": [899990988]}, "phone_numbers"),
        ({"phone_numbers": ["0899990988"] * 101}, "phone_numbers"),
        ({"code": "12a"}, "code"),
        ({"code": 1234}, "code"),
        ({"vip": "yes"}, "vip"),
        ({"oncall": 1}, "oncall"),
        ({"name": "x" * 201}, "name"),
        ({"name": "\ud800"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_customer_fields_are_400_with_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    reply = await api.put("/v1/customers/C1", json=body)
    assert reply.status == 400
    assert reply.error["field"] == field
    assert (await api.get("/v1/customers")).json["total"] == 0


@pytest.mark.parametrize("customer_id", ["a b", "-x", "x" * 65, "é"])
async def test_a_bad_customer_id_in_the_path_is_400(api: Api, customer_id: str) -> None:
    reply = await api.put(f"/v1/customers/{customer_id}", json={})
    assert reply.status == 400 and reply.error["field"] == "customer_id"


# -- import -------------------------------------------------------------------------------


async def test_import_reports_every_row(api: Api) -> None:
    body = csv(
        "default,C1,ACME,0899990988;0899990977,1234,207,209,214,216,1,0",
        "CL0000,C2,Beta,+33123456789,,300,,,,0,1",
    )
    reply = await api.post("/v1/customers/import", data=body)
    assert reply.status == 200
    assert reply.json == {
        "imported": 2,
        "accepted": 2,
        "rejected": 0,
        "partial": False,
        "message": "successfully",
        "rows": [
            {"line": 2, "status": "accepted", "account": "default", "customer_id": "C1"},
            {"line": 3, "status": "accepted", "account": "CL0000", "customer_id": "C2"},
        ],
    }
    got = (await api.get("/v1/customers/C2", params={"account": "CL0000"})).json
    assert got["oncall"] is True and got["phone_numbers"] == ["+33123456789"]


async def test_a_bad_row_imports_nothing_and_says_why(api: Api) -> None:
    body = csv(
        "default,C1,ACME,0899990988,,207,,,,1,0",
        "default,C2,Beta,0899990989,,207|208,,,,0,0",
        "default,C3,Gamma,hello,,207,,,,0,0",
    )
    reply = await api.post("/v1/customers/import", data=body)
    assert reply.status == 400
    assert reply.error["code"] == "invalid_rows"
    report = reply.json
    assert (report["imported"], report["accepted"], report["rejected"]) == (0, 1, 2)
    rejected = [r for r in report["rows"] if r["status"] == "rejected"]
    assert [(r["line"], r["field"]) for r in rejected] == [
        (3, "destination1"),
        (4, "phone_numbers"),
    ]
    assert (await api.get("/v1/customers")).json["total"] == 0


async def test_partial_imports_the_good_rows(api: Api) -> None:
    body = csv(
        "default,C1,ACME,0899990988,,207,,,,1,0",
        "default,C2,Beta,0899990989,,207|208,,,,0,0",
    )
    reply = await api.post("/v1/customers/import", params={"partial": "true"}, data=body)
    assert reply.status == 200
    assert (reply.json["imported"], reply.json["rejected"]) == (1, 1)
    assert reply.json["partial"] is True
    listed = (await api.get("/v1/customers")).json["data"]
    assert [c["customer_id"] for c in listed] == ["C1"]


async def test_a_number_held_by_a_stored_customer(api: Api) -> None:
    await api.put("/v1/customers/C1", json={"phone_numbers": ["0899990988"]})
    body = csv(
        "default,C5,Epsilon,0899990977,,q,,,,0,0",
        "default,C2,Beta,0899990988,,q,,,,0,0",
    )
    reply = await api.post("/v1/customers/import", data=body)
    assert reply.status == 409 and reply.error["code"] == "conflict"
    assert "line 3" in reply.error["message"] and "C1" in reply.error["message"]
    assert (await api.get("/v1/customers/C5")).status == 404
    reply = await api.post("/v1/customers/import", data=body, params={"partial": "1"})
    assert reply.status == 200 and reply.json["imported"] == 1
    rejected = [r for r in reply.json["rows"] if r["status"] == "rejected"]
    assert [r["line"] for r in rejected] == [3]
    assert (await api.get("/v1/customers/C5")).status == 200


async def test_rows_of_accounts_the_token_may_not_use(api: Api) -> None:
    body = csv("CL0000,C1,A,0899990988,,q,,,,0,0", "CL0001,C2,B,0899990989,,q,,,,0,0")
    reply = await api.post("/v1/customers/import", data=body, token=CL0000_TOKEN)
    assert reply.status == 403 and reply.error["code"] == "forbidden"
    rejected = [r for r in reply.json["rows"] if r["status"] == "rejected"]
    assert [(r["line"], r["field"]) for r in rejected] == [(3, "account")]
    reply = await api.post(
        "/v1/customers/import", data=body, token=CL0000_TOKEN, params={"partial": "true"}
    )
    assert reply.status == 200 and reply.json["imported"] == 1
    assert (await api.get("/v1/customers", token=READER_TOKEN)).json["total"] == 1


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"", 1),
        (b"account,customer_id\n", 1),
        (b"\xff\xfeaccount\n", None),
        (HEADER.encode() + b"\ndefault,C1,A,,,q,,,,0\n", 2),
        (HEADER.encode() + b"\ndefault,C1,A,,,q,,,,0,0\x00\n", 2),
    ],
)
async def test_a_malformed_file_is_400(api: Api, body: bytes, line: int | None) -> None:
    reply = await api.post("/v1/customers/import", data=body)
    assert reply.status == 400
    assert reply.error["code"] == "invalid_rows"
    if line is not None:
        assert [r["line"] for r in reply.json["rows"] if r["status"] == "rejected"] == [line]


@pytest.mark.parametrize(
    "body", [b"", b"account,customer_id\n", b"name\ndefault,C1,A,,,q,,,,0,0\n", b"\x00\x01"]
)
async def test_a_file_without_its_header_is_400_even_partial(api: Api, body: bytes) -> None:
    reply = await api.post("/v1/customers/import", data=body, params={"partial": "true"})
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "invalid_rows"
    assert [r["line"] for r in reply.json["rows"]] == [1]
    assert reply.json["imported"] == 0


async def test_a_bom_is_accepted_and_crlf_too(api: Api) -> None:
    body = b"\xef\xbb\xbf" + csv("default,C1,A,0899990988,,q,,,,0,0").replace(b"\n", b"\r\n")
    reply = await api.post("/v1/customers/import", data=body)
    assert reply.status == 200 and reply.json["imported"] == 1


async def test_the_import_has_its_own_size_limit(api_factory: Any) -> None:
    api = await api_factory(http={"max_body_bytes": 1024, "max_import_bytes": 4096})
    rows = [f"default,C{n},Name {n},,,q,,,,0,0" for n in range(60)]
    body = csv(*rows)
    assert 1024 < len(body) < 4096
    assert (await api.post("/v1/customers/import", data=body)).json["imported"] == 60
    big = csv(*rows * 4)
    reply = await api.post("/v1/customers/import", data=big)
    assert reply.status == 413 and "http.max_import_bytes" in reply.error["message"]

    async def chunks() -> Any:
        yield big

    reply = await api.post("/v1/customers/import", data=chunks())
    assert reply.status == 413
