"""schemathesis against the running router: every operation of /openapi.json, fuzzed.

The document is fetched from the live server (`LiveRouter`: a real Application, SQLite
file, aiohttp on 127.0.0.1 port 0). For every operation schemathesis generates requests
that match the document (positive) and requests that break it (negative), sends them with
an admin token (given to schemathesis as the API's authentication), and checks each answer:

* never a 5xx (``not_a_server_error``);
* the status, content type, headers and JSON body are the ones documented for that
  operation (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
* a request that breaks the document is refused with a 4xx (``negative_data_rejection``),
  and undocumented methods are 405 (``unsupported_method``).

Left out: ``positive_data_acceptance`` (a request that matches the document is accepted).
The document cannot say that a phone number must parse, that the account in a body must
be the account parameter, or that a CSV must hold valid rows, so schema-valid requests are
rightly refused with 400 there; the API tests check those refusals one by one.

A bounded run here (`EXAMPLES` per operation and mode); a long one with every phase
(coverage, stateful) is ``python -m bench.api_fuzz`` (see docs/reliability.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from fastagi_router.api.openapi import document
from tests.api.live import LiveRouter
from tests.conftest import ADMIN_TOKEN

#: Cases per operation and generation mode: (14 + 11) x 20 = 500 requests.
EXAMPLES = 20


def _operations() -> dict[str, bool]:
    """Label -> whether the operation takes any input (else it has no negative cases).

    schemathesis leaves out the operation that serves the document it was loaded from.
    """
    found = {}
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or path == "/openapi.json":
                continue
            inputs = item.get("parameters") or operation.get("parameters")
            found[f"{method.upper()} {path}"] = bool(inputs or operation.get("requestBody"))
    return found


OPERATIONS = sorted(_operations())
CASES = [
    (label, mode)
    for label, takes_input in sorted(_operations().items())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if takes_input or mode is GenerationMode.POSITIVE
]
STATUSES: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRouter]:
    with LiveRouter(tmp_path_factory.mktemp("fuzz")) as router:
        yield router


@pytest.fixture(scope="module")
def operations(live: LiveRouter) -> dict[str, Any]:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=schemathesis.Config())

    # The token goes through schemathesis, not the HTTP session: a negative case that drops
    # the security header is then known to have kept it, instead of being reported as
    # "schema-violating request accepted" when the session put the header back.
    @schema.auth()
    class _AdminToken:
        def get(self, case: Any, context: Any) -> str:
            return ADMIN_TOKEN

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[operation.label] = operation
    return found


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def test_the_served_document_has_every_operation(operations: dict[str, Any]) -> None:
    assert sorted(operations) == OPERATIONS


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{lb}-{md}" for lb, md in CASES])
def test_operation(
    operations: dict[str, Any], session: requests.Session, label: str, mode: GenerationMode
) -> None:
    operation = operations[label]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call_and_validate(
            session=session, excluded_checks=[positive_data_acceptance]
        )
        STATUSES[(label, str(response.status_code))] += 1

    check()


def test_the_fuzzed_requests_reached_the_logic(operations: dict[str, Any]) -> None:
    """Not only 400s: the runs above stored, found and listed records."""
    if not STATUSES:
        pytest.skip("run with the fuzz tests above")
    ok = {op for (op, status), n in STATUSES.items() if status == "200" and n}
    assert {"POST /v1/smartrouting", "PUT /v1/customers/{customer_id}"} <= ok, STATUSES
    assert {"GET /v1/smartrouting", "GET /v1/customers"} <= ok, STATUSES
