"""HTTP conventions: problem+json for every error, request ids, health and readiness."""

from __future__ import annotations

import httpx

from tests.conftest import MakeTenant


async def test_request_id_on_every_response(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert len(r.headers["x-request-id"]) == 32
    r = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/nope")
    assert r.headers["x-request-id"]


async def test_errors_are_problem_json(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    r = await client.get("/no/such/route")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert set(r.json()) >= {"type", "title", "status", "detail"}
    r = await client.delete("/api/v1/identity/token")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        content=b"{not json",
        params={},
    )
    assert r.status_code in (400, 422)
    assert r.headers["content-type"] == "application/problem+json"
    # a user id that is not a UUID names no resource (the route takes UUIDs only)
    r = await client.post("/api/v1/identity/users/not-a-uuid/disable", headers=t.auth)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_unhandled_errors_never_show_a_stack(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    # An absurd cursor must be a clean 404 problem (invalid-cursor), never a 500.
    r = await client.get("/api/v1/identity/users", headers=t.auth, params={"cursor": "_w"})
    assert r.status_code == 404
    assert "Traceback" not in r.text


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/identity/token" in spec["paths"]
