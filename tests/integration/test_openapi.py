"""The OpenAPI document describes what the server answers: every error an operation can give
is declared, as application/problem+json with the Problem schema, and every $ref resolves.
(The schemathesis gate in test_schemathesis.py checks the same against a running server.)"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import annotated_types
import httpx
import pytest
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, iter_route_contexts

from tenantry.kernel.http.app import create_app
from tenantry.kernel.platform import Platform
from tests.capabilities.test_authz_platform_actions import client_token, operator_tenant
from tests.conftest import MakeTenant

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
METHODS = {"get", "put", "post", "delete", "patch", "options", "head"}


@pytest.fixture(scope="module")
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", op


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_every_error_is_a_declared_problem(document: dict[str, Any]) -> None:
    missing: list[str] = []
    for name, op in _operations(document):
        responses = op["responses"]
        wheres = {p["in"] for p in op.get("parameters", [])}
        expected = {"401", "403", "429", "503"}
        if "requestBody" in op or wheres & {"query", "header"}:
            expected |= {"400", "422"}
        if "path" in wheres:
            expected |= {"404", "422"}
        for status in sorted(expected - set(responses)):
            missing.append(f"{name}: {status} not declared")
        for status, response in responses.items():
            content = dict(response.get("content") or {})
            if status == "400":  # and the HTTP server's own plain-text 400 for non-HTTP input
                assert content.pop("text/plain", None) is not None, name
            if status[0] in "45" and content != PROBLEM:
                missing.append(f"{name}: {status} is {response.get('content')}, not a problem")
    assert not missing, "\n".join(missing)


def test_problem_schema_replaces_fastapis_validation_error(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    bad = sorted(
        {
            ref
            for ref in [*_refs(document["paths"]), *_refs(schemas)]
            if not ref.startswith("#/components/schemas/")
            or ref.removeprefix("#/components/schemas/") not in schemas
        }
    )
    assert not bad


def test_route_and_dependency_extras_are_declared(document: dict[str, Any]) -> None:
    paths = document["paths"]
    # entitlements.require (a dependency) declares 402; the route declares its 409.
    add_user = paths["/api/v1/identity/users"]["post"]["responses"]
    assert {"402", "409"} <= set(add_user)
    assert "410" in paths["/api/v1/exports/{export_id}/download"]["get"]["responses"]
    assert "409" in paths["/api/v1/ledger/transactions"]["post"]["responses"]
    # the marker is read, then removed from the document
    assert all("x-tenantry-problems" not in op for _, op in _operations(document))


async def test_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await client.request("OPTIONS", "/api/v1/authz/policies/some-name", headers=t.auth)
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, PUT"
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_literal_segment_is_not_taken_for_an_id(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """GET /accounts/search is not GET /accounts/{account_id} with a bad id (422): only POST
    is defined there, so it is a 405."""
    t = await make_tenant()
    for path in ("/api/v1/ledger/accounts/search", "/api/v1/ledger/transactions/search"):
        r = await client.get(path, headers=t.auth)
        assert r.status_code == 405, r.text
        assert r.headers["allow"] == "POST"


def _operation_by_id(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (method, path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS and "operationId" in op
    }


@pytest.mark.parametrize(
    ("create", "body"),
    [
        (
            "/api/v1/ledger/accounts",
            {"code": "linked", "name": "Linked", "type": "asset", "currency": "USD"},
        ),
        ("/api/v1/identity/roles", {"name": "linked-role", "actions": ["ledger:read"]}),
        (
            "/api/v1/exports/schedules",
            {"source": "ledger.accounts", "format": "csv", "cron": "0 3 * * *"},
        ),
    ],
)
async def test_links_lead_from_a_created_resource_to_its_operations(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    document: dict[str, Any],
    create: str,
    body: dict[str, Any],
) -> None:
    """Every link of a creating POST names an operation of the document, and following the
    link's parameter expression on the real response reaches the created resource (each
    linked GET answers 200, not 404)."""
    t = await make_tenant()
    created = await client.post(create, json=body, headers=t.auth)
    assert created.status_code == 201, created.text
    responses = document["paths"][create]["post"]["responses"]
    links: dict[str, Any] = responses["201"]["links"]
    assert links
    by_id = _operation_by_id(document)
    followed = 0
    for link in links.values():
        method, path = by_id[link["operationId"]]
        assert path.startswith(create + "/{")
        for param, expression in link["parameters"].items():
            field = expression.removeprefix("$response.body#/")
            path = path.replace("{" + param + "}", str(created.json()[field]))
        if method == "get":
            r = await client.get(path, headers=t.auth)
            assert r.status_code == 200, (path, r.text)
            followed += 1
    assert followed or create == "/api/v1/identity/roles"


def test_every_integer_in_a_query_or_path_has_bounds_the_server_checks(platform: Platform) -> None:
    """The document gives every integer the 64-bit range at most, but the input guard can
    only check JSON: a query or path string is parsed by the route. So every integer query,
    path and header parameter of every route declares its own bounds (``Query(ge=..., le=...)``,
    ``Path(...)``), and FastAPI refuses what lies outside with a 422 (a ``limit`` of 2^63 was
    accepted by ``GET /platform/errors``, and -5 too)."""
    bounds = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)
    unbounded: list[str] = []
    routes = list(iter_route_contexts(list(create_app(platform, manage_lifecycle=False).routes)))
    assert len(routes) > 50
    for route in routes:
        if not isinstance(route.original_route, APIRoute):
            continue
        for field in get_flat_params(route.dependant):
            annotation = field.field_info.annotation
            if annotation is not int and int not in typing.get_args(annotation):
                continue
            kinds = {type(m) for m in field.field_info.metadata if isinstance(m, bounds)}
            low = kinds & {annotated_types.Ge, annotated_types.Gt}
            high = kinds & {annotated_types.Le, annotated_types.Lt}
            if not (low and high):
                unbounded.append(f"{sorted(route.methods or ())} {route.path_format} {field.name}")
    assert not unbounded


async def test_an_integer_query_beyond_its_bounds_is_422(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    auth = await client_token(platform, client, await operator_tenant(platform), ["admin"])
    for query in ("limit=9223372036854775808", "limit=-5", "limit=0"):
        r = await client.get(f"/api/v1/platform/errors?{query}", headers=auth)
        assert r.status_code == 422, (query, r.text)
    r = await client.get("/api/v1/platform/errors/9223372036854775808", headers=auth)
    assert r.status_code == 422, r.text


async def test_an_unknown_server_for_a_new_tenant_is_422_naming_it(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """The document lists the configured servers as the enum of ``server``; the server holds
    to it (an unknown one was a ConfigError: 500 over HTTP, "invalid configuration" on the
    CLI)."""
    auth = await client_token(platform, client, await operator_tenant(platform), ["admin"])
    body = {"slug": "srv-unknown", "name": "X", "isolation": "shared", "server": "AAA"}
    r = await client.post("/api/v1/platform/tenants", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "server"
    assert "AAA" in r.json()["detail"]
    assert await platform.catalog.by_slug("srv-unknown") is None


def test_bounds_are_json_schema_keywords(document: dict[str, Any]) -> None:
    """pydantic writes a bound it cannot place (``Annotated[JsonInt, Field(ge=1)] | None``)
    as its own ``ge``/``le``/``gt``/``lt`` key, which no client or generator reads: the
    override's ``burst`` of -4418 was schema-valid. Every bound is minimum/maximum/exclusive*."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("type"), str | list):
                found.extend(f"{where}: {k}" for k in ("ge", "le", "gt", "lt") if k in node)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(document, "#")
    assert not found


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/exports", {"source": "ledger.accounts", "format": "csv"}),
        ("/api/v1/ledger/transactions", None),
    ],
)
async def test_a_replayed_request_answers_a_documented_status(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    document: dict[str, Any],
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """The same Idempotency-Key twice: both answers are statuses the operation declares (an
    export's replay is 200, its first answer 202; schemathesis's stateful phase found the 200
    undeclared)."""
    t = await make_tenant()
    if body is None:
        accounts = []
        for code in ("r1", "r2"):
            r = await client.post(
                "/api/v1/ledger/accounts",
                json={"code": code, "name": code, "type": "asset", "currency": "USD"},
                headers=t.auth,
            )
            accounts.append(r.json()["id"])
        body = {
            "entries": [
                {"account_id": accounts[0], "direction": "debit", "amount": 5},
                {"account_id": accounts[1], "direction": "credit", "amount": 5},
            ]
        }
    headers = {**t.auth, "Idempotency-Key": "replayed-once"}
    first = await client.post(path, json=body, headers=headers)
    again = await client.post(path, json=body, headers=headers)
    declared = document["paths"][path]["post"]["responses"]
    assert first.status_code < 300, first.text
    assert again.status_code < 300, again.text
    assert str(first.status_code) in declared
    assert str(again.status_code) in declared
