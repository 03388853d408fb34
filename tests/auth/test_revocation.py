"""Tokens of principals that lost access stop working within 1 s on every process.

Before, a token issued before a user was disabled, a membership removed, an API client
disabled or a tenant deleted kept working until it expired (15 min by default, up to 24 h).
Each case below warms a SECOND platform (another process's view: its own pools, caches and
LISTEN connection, with a 300 s principal-status TTL so only NOTIFY can invalidate it), then
revokes through the first and polls the second until the token is refused.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.http.app import create_app
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tests.conftest import PASSWORD, MakeTenant, TenantFixture, get_token

ME = "/api/v1/identity/me"
USERS = "/api/v1/identity/users"
LIMIT_S = 1.0


@pytest.fixture(scope="module")
async def other(settings: Settings, platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A second platform on the same database, as another server process would be."""
    s = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"principal_status_ttl_s": 300.0})}
    )
    p = Platform.build(s, discover())
    await p.start()
    app = create_app(p, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as c:
            yield c
    finally:
        await p.close()


async def _member(client: httpx.AsyncClient, t: TenantFixture) -> tuple[str, str]:
    email = f"m{uuid.uuid4().hex[:8]}@{t.tenant.slug}.test"
    r = await client.post(
        USERS, headers=t.auth, json={"email": email, "password": PASSWORD, "roles": ["admin"]}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], await get_token(client, email, PASSWORD, t.tenant.slug)


async def _refused_within(
    clients: list[httpx.AsyncClient], token: str, revoke: Callable[[], Awaitable[None]]
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for c in clients:  # warm every process's cache: the test is about invalidation
        r = await c.get(ME, headers=auth)
        assert r.status_code == 200, r.text
    await revoke()
    start = time.monotonic()
    for c in clients:
        while True:
            r = await c.get(ME, headers=auth)
            if r.status_code == 401:
                break
            assert r.status_code == 200, r.text
            assert time.monotonic() - start < LIMIT_S, f"still accepted after {LIMIT_S} s"
            await asyncio.sleep(0.02)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/invalid-token")


async def test_disabled_member(
    client: httpx.AsyncClient, other: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    user_id, token = await _member(client, t)

    async def revoke() -> None:
        r = await client.post(f"{USERS}/{user_id}/disable", headers=t.auth)
        assert r.status_code == 200, r.text

    await _refused_within([client, other], token, revoke)
    # Enabled again: a fresh token works (the cached "disabled" answer was dropped too).
    r = await client.post(f"{USERS}/{user_id}/enable", headers=t.auth)
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.2)
    for c in (client, other):
        r = await c.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text


async def test_removed_member(
    client: httpx.AsyncClient, other: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant("schema")
    user_id, token = await _member(client, t)

    async def revoke() -> None:
        r = await client.delete(f"{USERS}/{user_id}", headers=t.auth)
        assert r.status_code == 204, r.text

    await _refused_within([client, other], token, revoke)
    listed = (await client.get(USERS, headers=t.auth)).json()["items"]
    assert user_id not in {m["id"] for m in listed}
    r = await client.delete(f"{USERS}/{user_id}", headers=t.auth)
    assert r.status_code == 404
    # An admin cannot remove themselves (the way a tenant loses its last admin).
    me = (await client.get(ME, headers=t.auth)).json()
    r = await client.delete(f"{USERS}/{me['subject']}", headers=t.auth)
    assert r.status_code == 409, r.text
    # Nor disable themselves (schemathesis locked its own admin out that way), and the
    # refusal leaves the caller working.
    r = await client.post(f"{USERS}/{me['subject']}/disable", headers=t.auth)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get(ME, headers=t.auth)).status_code == 200


async def test_disabled_api_client(
    client: httpx.AsyncClient, other: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await client.post(
        "/api/v1/identity/clients", headers=t.auth, json={"name": "etl", "roles": ["admin"]}
    )
    assert r.status_code == 201, r.text
    c = r.json()
    r = await client.post(
        "/api/v1/identity/token",
        data={
            "grant_type": "client_credentials",
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
        },
    )
    token = r.json()["access_token"]

    async def revoke() -> None:
        r = await client.post(f"/api/v1/identity/clients/{c['id']}/disable", headers=t.auth)
        assert r.status_code == 200, r.text

    await _refused_within([client, other], token, revoke)


async def test_disabled_login(
    client: httpx.AsyncClient, other: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    """A login disabled for the whole platform (users.status) loses every tenant at once."""
    t = await make_tenant()
    user_id, token = await _member(client, t)

    async def revoke() -> None:
        async with admin_connection(platform.db, as_owner=False) as conn:
            await conn.execute(
                "UPDATE tenantry.users SET status = 'disabled' WHERE id = $1", uuid.UUID(user_id)
            )

    await _refused_within([client, other], token, revoke)


async def test_deleted_tenant(
    client: httpx.AsyncClient, other: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    t = await make_tenant()

    async def revoke() -> None:
        await platform.provisioner.delete_record(t.tenant.id)

    await _refused_within([client, other], t.token, revoke)
