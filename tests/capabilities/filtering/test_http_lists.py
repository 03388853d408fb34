"""The shared list helpers in place: identity's ``GET /users`` and ``POST /users/search``
(filter by email/status/created_at, sort, keyset pages, cursors scoped to the tenant), and no
query string or body ever gives a 500."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantry.capabilities.filtering import compile_document
from tenantry.capabilities.pagination import parse_filter_param
from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.errors import BadRequest
from tenantry.kernel.platform import Platform
from tenantry_identity.routes import IdentityClients
from tests.capabilities.filtering.conftest import ITEMS
from tests.capabilities.filtering.strategies import json_junk
from tests.conftest import MakeTenant, TenantFixture

USERS = "/api/v1/identity/users"
N_MEMBERS = 9


@pytest.fixture(scope="module")
async def members(platform: Platform, make_tenant: MakeTenant) -> TenantFixture:
    """A tenant with its admin and N_MEMBERS more members (created without password hashing)."""
    # Hypothesis sends ~100 requests in a burst: a plan whose rate limit they fit in.
    t = await make_tenant(plan="enterprise")
    identity = platform.use(ClientIssuer)
    assert isinstance(identity, IdentityClients)
    units, repo = identity.service.units, identity.service.repository
    for i in range(N_MEMBERS):
        email = f"m{i}.{t.tenant.slug}@example.test"
        async with units.platform() as uow:
            uid = await repo.create_user(uow, email, "not-a-real-hash", uuid.uuid4())
        async with units.members(t.tenant) as uow:
            assert await repo.add_membership(uow, uid, [])
    return t


async def get(client: httpx.AsyncClient, t: TenantFixture, **params: Any) -> httpx.Response:
    if isinstance(params.get("filter"), dict | list):
        params["filter"] = orjson.dumps(params["filter"]).decode()
    return await client.get(USERS, headers=t.auth, params=params)


async def all_pages(client: httpx.AsyncClient, t: TenantFixture, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        r = await get(client, t, **params, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def test_pages_in_email_order(client: httpx.AsyncClient, members: TenantFixture) -> None:
    items = await all_pages(client, members, limit=2)
    emails = [i["email"] for i in items]
    assert len(emails) == N_MEMBERS + 1
    assert emails == sorted(emails)
    newest_first = await all_pages(client, members, limit=4, sort="-created_at")
    stamps = [i["created_at"] for i in newest_first]
    assert stamps == sorted(stamps, reverse=True)
    assert {i["id"] for i in newest_first} == {i["id"] for i in items}


async def test_filters(client: httpx.AsyncClient, members: TenantFixture) -> None:
    items = await all_pages(client, members)
    victim = next(i for i in items if i["email"].startswith("m3."))
    r = await client.post(f"{USERS}/{victim['id']}/disable", headers=members.auth)
    assert r.status_code == 200
    disabled = await all_pages(
        client, members, filter={"filters": [{"field": "status", "op": "eq", "value": "disabled"}]}
    )
    assert [i["id"] for i in disabled] == [victim["id"]]
    m_ = await all_pages(
        client,
        members,
        limit=3,
        filter=[
            {"field": "email", "op": "startswith", "value": "m"},
            {"not": {"field": "status", "op": "eq", "value": "disabled"}},
            {"field": "created_at", "op": "gte", "value": "2020-01-01"},
        ],
    )
    assert len(m_) == N_MEMBERS - 1
    none = await all_pages(
        client, members, filter=[{"field": "email", "op": "contains", "value": "%"}]
    )
    assert none == []


async def test_search_body_is_the_same_document(
    client: httpx.AsyncClient, members: TenantFixture
) -> None:
    doc = {
        "filters": [{"field": "email", "op": "icontains", "value": "M1"}],
        "sort": {"field": "email", "dir": "desc"},
        "limit": 1,
    }
    r = await client.post(f"{USERS}/search", headers=members.auth, json=doc)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["items"][0]["email"].startswith("m1.")
    assert first["next_cursor"] is None
    r = await client.post(f"{USERS}/search", headers=members.auth, json={"limit": 3})
    assert r.status_code == 200
    second = await client.post(
        f"{USERS}/search",
        headers=members.auth,
        json={"limit": 3, "cursor": r.json()["next_cursor"]},
    )
    assert second.status_code == 200
    assert len(second.json()["items"]) == 3
    json_type = {**members.auth, "Content-Type": "application/json"}
    r = await client.post(f"{USERS}/search", headers=json_type, content=b"{nope")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post(f"{USERS}/search", headers=json_type, content=b"[1]")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_bad_requests_are_problems(
    client: httpx.AsyncClient, members: TenantFixture, make_tenant: MakeTenant
) -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"filter": "{not json"}, 400),
        ({"filter": '{"filters":[{"field":"password_hash","op":"eq","value":"x"}]}'}, 422),
        ({"filter": '[{"field":"tenant_id","op":"eq","value":"x"}]'}, 422),
        ({"filter": '[{"field":"email","op":"gt","value":"a"}]'}, 422),
        ({"filter": '[{"field":"created_at","op":"gte","value":"yesterday"}]'}, 422),
        ({"sort": "roles"}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "1001"}, 422),
        ({"cursor": "_w"}, 404),
        ({"cursor": "a." + "b" * 5000}, 404),
    ]
    for params, status in cases:
        r = await get(client, members, **params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in r.text
    r = await get(client, members, filter='[{"field":"email","op":"gt","value":"a"}]')
    err = r.json()["errors"][0]
    assert (err["filter_field"], err["op"]) == ("email", "gt")
    # a cursor of one tenant is refused by another
    cursor = (await get(client, members, limit=1)).json()["next_cursor"]
    other = await make_tenant()
    r = await get(client, other, limit=1, cursor=cursor)
    assert r.status_code == 404, r.text


async def test_openapi_lists_the_fields(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    params = {p["name"]: p for p in spec["paths"][USERS]["get"]["parameters"]}
    assert set(params) >= {"filter", "sort", "limit", "cursor"}
    assert "`status` (enum): eq, in, is_null, ne, nin" in params["filter"]["description"]
    assert "sortable: email, status, created_at" in params["sort"]["description"]
    assert f"{USERS}/search" in spec["paths"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.one_of(
        st.text(max_size=40),
        json_junk.map(json.dumps),  # json: orjson refuses ints beyond 64 bits
        st.sampled_from(['{"filters":[{"field":"email","op":"in","value":[]}]}', "[]", "null"]),
    ),
    sort=st.one_of(st.none(), st.text(max_size=12)),
)
async def test_no_query_string_gives_a_500(
    client: httpx.AsyncClient, members: TenantFixture, raw: str, sort: str | None
) -> None:
    params = {"filter": raw, **({"sort": sort} if sort is not None else {})}
    r = await client.get(USERS, headers=members.auth, params=params)
    assert r.status_code in (200, 400, 422), r.text
    headers = {**members.auth, "Content-Type": "application/json"}
    r = await client.post(f"{USERS}/search", headers=headers, content=raw.encode())
    assert r.status_code in (200, 400, 422), r.text


def test_numbers_and_bad_json_in_the_filter_parameter() -> None:
    """Numbers come through orjson as floats, exact up to 15 significant digits (repr is the
    shortest round trip); longer decimals go in strings. Anything not JSON is a 400."""
    values = '[0.3, 1e2, 123456789.123456, "0.30000000000000004444"]'
    doc = parse_filter_param(f'[{{"field": "price", "op": "in", "value": {values}}}]')
    exact = ["0.3", "100.0", "123456789.123456", "0.30000000000000004444"]
    assert compile_document(ITEMS, doc).params == [[Decimal(v) for v in exact]]
    for bad in ("[" * 100_000, '{"a": 1', "\ud800", "NaN"):
        with pytest.raises(BadRequest):
            parse_filter_param(bad)
