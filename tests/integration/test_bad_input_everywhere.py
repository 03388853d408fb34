"""No 5xx on bad input, anywhere (issue 12 item 4).

Values that pass any schema and still break below it: a NUL character, a lone surrogate, an
integer beyond 64 bits, a number beyond the double range, a date-time whose offset leaves
years 1-9999 in UTC. First the cases found by the attack run, each with a request that is
otherwise valid (so the value reaches the service and the database); then every string and
number field of every operation in the OpenAPI document gets each value injected.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tenantry.kernel.platform import Platform
from tests.capabilities.test_authz_platform_actions import client_token, operator_tenant
from tests.conftest import MakeTenant, TenantFixture

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: Placeholders replaced in the serialized JSON body by number literals json.dumps cannot write.
BIG_INT = "__big_int__"
BIG_FLOAT = "__big_float__"
NUMBER_LITERALS = {BIG_INT: "1" + "0" * 400, BIG_FLOAT: "1e400"}
BAD_STRINGS = [
    "a\x00b",
    "\ud800",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00+14:00",
]
#: A URL or form is bytes: a lone surrogate cannot be written there, only in JSON.
URL_BAD_STRINGS = [v for v in BAD_STRINGS if v != "\ud800"]
BAD_NUMBERS: list[Any] = [BIG_INT, BIG_FLOAT, 2**63]


def dump(body: Any) -> bytes:
    text = json.dumps(body)
    for placeholder, literal in NUMBER_LITERALS.items():
        text = text.replace(f'"{placeholder}"', literal)
    return text.encode()


def assert_refused(r: httpx.Response, status: int = 422) -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    if status == 422:
        assert r.json()["type"].endswith("/invalid-value"), r.text


@dataclass
class World:
    t: TenantFixture
    cash: str
    equity: str
    tx: str
    operator: dict[str, str]

    def json(self, method: str, url: str, body: Any, **kw: Any) -> tuple[str, str, bytes, Any]:
        return method, url, dump(body), kw


@pytest.fixture(scope="module")
async def world(platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant) -> World:
    t = await make_tenant(plan="enterprise")
    r = await client.get("/api/v1/ledger/accounts?limit=50", headers=t.auth)
    ids = {a["code"]: a["id"] for a in r.json()["items"]}
    r = await client.post(
        "/api/v1/ledger/transactions",
        headers={**t.auth, "Idempotency-Key": uuid.uuid4().hex},
        json={
            "description": "capital",
            "entries": [
                {"account_id": ids["1000"], "direction": "debit", "amount": 100},
                {"account_id": ids["3000"], "direction": "credit", "amount": 100},
            ],
        },
    )
    assert r.status_code == 201, r.text
    operator = await client_token(platform, client, await operator_tenant(platform), ["admin"])
    return World(t, ids["1000"], ids["3000"], r.json()["id"], operator)


async def send_json(
    client: httpx.AsyncClient, method: str, url: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(
        method,
        url,
        content=dump(body),
        headers={**headers, "content-type": "application/json"},
    )


# -- the cases the attack run found -------------------------------------------------------


async def test_nul_in_every_stored_string_found_by_the_attack(
    client: httpx.AsyncClient, world: World
) -> None:
    a = world.t.auth
    idem = {**a, "Idempotency-Key": uuid.uuid4().hex}
    cases: list[tuple[str, str, Any, dict[str, str]]] = [
        (
            "POST",
            "/api/v1/ledger/accounts",
            {"code": "9\x00", "name": "n", "type": "asset", "currency": "USD"},
            a,
        ),
        (
            "POST",
            "/api/v1/ledger/accounts",
            {"code": "91", "name": "n\x00", "type": "asset", "currency": "USD"},
            a,
        ),
        (
            "POST",
            "/api/v1/ledger/accounts",
            {
                "code": "92",
                "name": "n",
                "type": "asset",
                "currency": "USD",
                "metadata": {"k": "v\x00"},
            },
            a,
        ),
        ("POST", "/api/v1/identity/users", {"email": "a\x00@b.test", "roles": []}, a),
        ("POST", "/api/v1/identity/clients", {"name": "c\x00", "roles": []}, a),
        (
            "POST",
            "/api/v1/notifications/webhooks",
            {"url": "https://example.com/\x00", "events": ["*"]},
            a,
        ),
        ("PUT", "/api/v1/authz/subjects/u1/attributes", {"attributes": {"dept": "x\x00"}}, a),
        (
            "POST",
            "/api/v1/exports",
            {"source": "ledger.accounts", "format": "csv", "notify": {"email": "a\x00@b.test"}},
            idem,
        ),
        (
            "POST",
            f"/api/v1/ledger/transactions/{world.tx}/reverse",
            {"description": "undo\x00"},
            idem,
        ),
    ]
    for method, url, body, headers in cases:
        assert_refused(await send_json(client, method, url, body, headers))


async def test_token_endpoint_refuses_nul_as_bad_credentials(client: httpx.AsyncClient) -> None:
    for form in (
        {"grant_type": "password", "username": "a@b.test", "password": "x", "tenant": "al\x00pha"},
        {"grant_type": "client_credentials", "client_id": "\x00", "client_secret": "s"},
    ):
        r = await client.post("/api/v1/identity/token", data=form)
        assert_refused(r, 401)
        assert r.json()["error"] == "invalid_request"


async def test_lone_surrogate_in_a_filter_value(client: httpx.AsyncClient, world: World) -> None:
    doc = {"filters": [{"field": "name", "op": "eq", "value": "\ud800"}]}
    r = await send_json(client, "POST", "/api/v1/ledger/accounts/search", doc, world.t.auth)
    assert_refused(r)
    nul = {"filters": [{"field": "name", "op": "eq", "value": "a\x00"}]}
    r = await client.get(
        "/api/v1/ledger/accounts", params={"filter": json.dumps(nul)}, headers=world.t.auth
    )
    assert_refused(r)


async def test_huge_numbers_in_metadata_and_metadata_filters(
    client: httpx.AsyncClient, world: World
) -> None:
    for number in BAD_NUMBERS:
        body = {
            "code": "93",
            "name": "n",
            "type": "asset",
            "currency": "USD",
            "metadata": {"n": number},
        }
        r = await send_json(client, "POST", "/api/v1/ledger/accounts", body, world.t.auth)
        assert_refused(r)
        doc = {"filters": [{"field": "metadata.n", "op": "gt", "value": number}]}
        r = await send_json(client, "POST", "/api/v1/ledger/accounts/search", doc, world.t.auth)
        assert_refused(r)
    big = '{"filters": [{"field": "metadata.n", "op": "gt", "value": 18446744073709551615}]}'
    r = await client.get("/api/v1/ledger/accounts", params={"filter": big}, headers=world.t.auth)
    assert_refused(r)


async def test_datetime_offsets_that_overflow(client: httpx.AsyncClient, world: World) -> None:
    for value in BAD_STRINGS[2:]:
        r = await client.get(
            f"/api/v1/ledger/accounts/{world.cash}/balance",
            params={"as_of": value},
            headers=world.t.auth,
        )
        assert_refused(r)


async def test_values_that_look_bad_but_are_fine_still_pass(
    client: httpx.AsyncClient, world: World
) -> None:
    """No false positives: escaped non-ASCII text, a valid surrogate pair, a literal
    backslash-u, the largest int64, years 0001/9999 that stay in range."""
    metadata = {
        "text": "naïve ☃ \U0001f600",
        "literal": "\\u0000 is how JSON spells NUL",
        "max": 2**63 - 1,
        "min": -(2**63),
        "small": 1e-300,
        "first": "0001-01-01T00:00:00Z",
        "last": "9999-12-31T23:59:59+00:00",
    }
    body = {
        "code": "94",
        "name": "Infinity and NaN",
        "type": "asset",
        "currency": "USD",
        "metadata": metadata,
    }
    r = await send_json(client, "POST", "/api/v1/ledger/accounts", body, world.t.auth)
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == metadata
    r = await client.get(
        f"/api/v1/ledger/accounts/{world.cash}/balance",
        params={"as_of": "9999-12-31T23:59:59Z"},
        headers=world.t.auth,
    )
    assert r.status_code == 200, r.text


# -- every field of every operation -------------------------------------------------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(doc, s).get("type") != "null"]
            return _resolve(doc, options[0]) if options else schema
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(doc, schema["allOf"][0])
    return schema


def _kind(s: dict[str, Any]) -> Any:
    """The schema's type; of a list of types (``["array", "null"]``), the first not null."""
    kind = s.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), None)
    return kind


def sample(doc: dict[str, Any], schema: dict[str, Any], name: str, world: World) -> Any:
    """A value valid for ``schema``: a real account id where one is asked for."""
    s = _resolve(doc, schema)
    if "default" in s and s["default"] is not None:
        return s["default"]
    if "enum" in s:
        return s["enum"][0]
    if "const" in s:
        return s["const"]
    kind = _kind(s)
    if kind == "string":
        fmt = s.get("format")
        if fmt == "uuid":
            return world.cash if name in {"account_id", "account"} else str(uuid.uuid4())
        if fmt == "date-time":
            return "2026-01-01T00:00:00Z"
        if fmt == "date":
            return "2026-01-01"
        if fmt == "email" or "email" in name:
            return "someone@example.com"
        if fmt == "uri" or name == "url":
            return "https://example.com/hook"
        return "x" * max(int(s.get("minLength", 1)), 1)
    if kind == "integer":
        return int(s.get("minimum", 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return [sample(doc, s.get("items", {}), name, world)] * max(int(s.get("minItems", 1)), 1)
    if kind == "object" or "properties" in s:
        props = s.get("properties", {})
        return {k: sample(doc, props[k], k, world) for k in s.get("required", []) if k in props}
    return "x"


def path_value(doc: dict[str, Any], param: dict[str, Any], world: World) -> str:
    if "account" in param["name"]:
        return world.cash
    if param["name"] == "transaction_id":
        return world.tx
    if _resolve(doc, param.get("schema", {})).get("format") == "uuid":
        return str(uuid.uuid4())
    return "x"


def leaves(
    doc: dict[str, Any], schema: dict[str, Any], path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every (path, kind) of a string or number field, optional ones and free-form object
    values (metadata, attributes) included."""
    if len(path) > 8:  # recursive schemas (filter documents): deep enough
        return
    s = _resolve(doc, schema)
    kind = _kind(s)
    if kind == "string":
        yield path, "string"
    elif kind in {"integer", "number"}:
        yield path, "number"
    elif kind == "array":
        yield from leaves(doc, s.get("items", {}), (*path, 0))
    elif kind == "object" or "properties" in s:
        for k, sub in s.get("properties", {}).items():
            yield from leaves(doc, sub, (*path, k))
        extra = s.get("additionalProperties")
        if extra is True or (isinstance(extra, dict) and not extra.get("properties")):
            yield (*path, "injected"), "string"
            yield (*path, "injected"), "number"


def put(body: Any, path: tuple[Any, ...], value: Any, fill: Any) -> Any:
    """``body`` with ``value`` at ``path``, creating containers on the way."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) and body else [fill]
        items[0] = put(items[0], rest, value, None)
        return items
    node = dict(body) if isinstance(body, dict) else {}
    node[head] = put(node.get(head), rest, value, None)
    return node


async def test_no_5xx_when_bad_values_reach_any_field_of_any_operation(
    client: httpx.AsyncClient, world: World
) -> None:
    doc = (await client.get("/openapi.json")).json()
    failures: list[str] = []
    sent = 0

    async def check(method: str, url: str, what: str, **kw: Any) -> None:
        nonlocal sent
        sent += 1
        r = await client.request(method, url, **kw)
        if r.status_code >= 500 or (
            r.status_code >= 400
            and not r.headers.get("content-type", "").startswith("application/problem+json")
        ):
            failures.append(f"{method} {url} {what}: {r.status_code} {r.text[:160]}")

    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            platform_op = any(
                a.startswith("platform:") for a in op.get("x-tenantry-permissions", [])
            )
            auth = world.operator if platform_op else world.t.auth
            headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
            params = op.get("parameters", [])
            path_values = {
                p["name"]: path_value(doc, p, world) for p in params if p["in"] == "path"
            }
            url = path.format(**path_values)
            # Path and query parameters.
            for p in params:
                if p["in"] not in {"path", "query"}:
                    continue
                for bad in URL_BAD_STRINGS:
                    if p["in"] == "path":
                        quoted = urllib.parse.quote(bad, safe="")
                        bad_url = path.format(**{**path_values, p["name"]: quoted})
                        await check(method, bad_url, p["name"], headers=headers)
                    else:
                        q = {p["name"]: bad}
                        await check(method.upper(), url, p["name"], params=q, headers=headers)
            # Body fields.
            content = op.get("requestBody", {}).get("content", {})
            for media, spec in content.items():
                schema = spec.get("schema", {})
                base = sample(doc, schema, "", world)
                for where, kind in leaves(doc, schema):
                    values: list[Any] = BAD_STRINGS if kind == "string" else BAD_NUMBERS
                    for bad in values:
                        body = put(base, where, bad, sample(doc, schema, "", world))
                        if media == "application/json":
                            await check(
                                method.upper(),
                                url,
                                f"body {where} = {bad!r}",
                                content=dump(body),
                                headers={**headers, "content-type": media},
                            )
                        elif bad in URL_BAD_STRINGS:
                            await check(
                                method.upper(),
                                url,
                                f"form {where} = {bad!r}",
                                data=body,
                                headers=headers,
                            )
    assert sent > 400
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} of {sent})"
