"""/openapi.json against the running application: the same endpoints, methods and rules.

(Every answer of every API test is also validated against this document: see conftest.)
"""

from __future__ import annotations

import jsonschema
from aiohttp import web

from fastagi_router import model
from fastagi_router.api import openapi
from fastagi_router.api.errors import CODES
from fastagi_router.api.middleware import PUBLIC
from tests.api.conftest import DOC, Api

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in DOC["paths"].items()
        for method in item
        if method in METHODS
    }


async def test_the_served_document_is_the_document(api: Api) -> None:
    reply = await api.get("/openapi.json", token=None)
    assert reply.json == openapi.document()
    assert reply.json["openapi"] == "3.1.0"


async def test_every_route_is_documented_and_every_documented_path_is_served(api: Api) -> None:
    assert api.app is not None
    assert app_operations(api.app) == documented_operations()


def test_public_operations_are_the_ones_without_a_token() -> None:
    public = {
        path
        for path, item in DOC["paths"].items()
        for method, operation in item.items()
        if method in METHODS and operation.get("security") == []
    }
    assert public == PUBLIC
    for method, path in documented_operations():
        operation = DOC["paths"][path][method]
        if path not in PUBLIC:
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
        if "requestBody" in operation:
            assert "413" in operation["responses"], (method, path)


def test_operation_ids_are_unique() -> None:
    ids = [DOC["paths"][path][method]["operationId"] for method, path in documented_operations()]
    assert len(ids) == len(set(ids))


def test_the_patterns_are_the_checks_of_the_model() -> None:
    pairs = [
        (openapi.ACCOUNT_PATTERN, model._ACCOUNT),
        (openapi.TOKEN_PATTERN, model._TOKEN),
        (openapi.CUSTOMER_ID_PATTERN, model._CUSTOMER_ID),
        (openapi.CODE_PATTERN, model._CODE),
    ]
    for documented, checked in pairs:
        assert documented == f"^{checked.pattern}$"


def test_every_error_code_is_documented() -> None:
    error = DOC["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(error["properties"]["code"]["enum"]) == set(CODES)


def test_every_schema_is_valid_json_schema() -> None:
    def schemas(node: object) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "schema" and isinstance(value, dict):
                    found.append(value)
                found.extend(schemas(value))
        elif isinstance(node, list):
            for item in node:
                found.extend(schemas(item))
        return found

    every = [*DOC["components"]["schemas"].values(), *schemas(DOC["paths"])]
    every += schemas(DOC["components"]["responses"])
    assert len(every) > 20
    for schema in every:
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_reference_resolves() -> None:
    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(DOC):
        target: object = DOC
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, ref
            target = target[part]
