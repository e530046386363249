"""Arbitrary input never gets a 500: generated bodies, path values and query strings.

Every answer is also checked against /openapi.json by the `Api` client (see conftest).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["0899990988", "+84899990988", "104", "", " ", "1&2", "x" * 100]),
)


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["phone_number", "agent", "description", "extra"]),
        field_values,
        max_size=4,
    )
)
async def test_smartrouting_bodies(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("/v1/smartrouting", data=json.dumps(body).encode())
    assert reply.status in (200, 400)


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            ["customer_id", "account", "name", "phone_numbers", "code", "destination1", "vip"]
        ),
        field_values,
        max_size=5,
    )
)
async def test_customer_bodies(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("/v1/customers", data=json.dumps(body).encode())
    assert reply.status in (200, 400, 409)


@FUZZ
@given(key=st.text(min_size=1, max_size=80))
async def test_smartrouting_path_values(api: Api, key: str) -> None:
    reply = await api.get(f"/v1/smartrouting/{quote(key, safe='')}")
    assert reply.status in (200, 400, 404)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["customerAccount", "number", "code", "format", "destination", "x"]),
        st.text(max_size=40) | st.sampled_from(["CL0000", "0899990988", "raw", "json", "2"]),
        max_size=5,
    )
)
async def test_lookup_queries(api: Api, params: dict[str, str]) -> None:
    reply = await api.get("/api/v1/smartRoutings", params=params)
    assert reply.status in (200, 400, 404)


@FUZZ
@given(body=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
async def test_import_bodies(api: Api, body: bytes) -> None:
    header = b"account,customer_id,name,phone_numbers,code,destination1,destination2,"
    header += b"destination3,destination4,vip,oncall\n"
    for data in (body, header + body):
        reply = await api.post("/v1/customers/import", data=data, params={"partial": "true"})
        assert reply.status in (200, 400, 409)
