"""Member profiles (``GET /users/{id}``) through the platform cache (``identity:profile``,
300 s): a second read is a hit and issues no query, every membership change is seen by the
next read on this process and on another, a tenant never reads another's cached profile."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tenantry.capabilities.cache.api import CacheSettings, build_cache
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import PASSWORD, MakeTenant, TenantFixture, cache_hits

API = "/api/v1/identity"
PREFIX = "identity:profile"


async def _member(client: httpx.AsyncClient, t: TenantFixture) -> str:
    email = f"p{uuid.uuid4().hex[:8]}@{t.tenant.slug}.test"
    r = await client.post(
        f"{API}/users", headers=t.auth, json={"email": email, "password": PASSWORD, "roles": []}
    )
    assert r.status_code == 201, r.text
    user_id: str = r.json()["id"]
    return user_id


async def test_a_second_read_is_a_hit_and_reads_no_row(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    uid = await _member(client, t)
    first = await client.get(f"{API}/users/{uid}", headers=t.auth)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "active"
    before = cache_hits(PREFIX)
    async with admin_connection(platform.db, as_owner=False) as conn:  # behind the service
        await conn.execute(
            "UPDATE tenantry.memberships SET roles = '{ghost}' WHERE user_id = $1 "
            "AND tenant_id = $2",
            uuid.UUID(uid),
            t.tenant.id,
        )
    again = await client.get(f"{API}/users/{uid}", headers=t.auth)
    assert again.json() == first.json()  # served by the cache: the table was not read
    assert cache_hits(PREFIX) == before + 1
    r = await client.post(f"{API}/users/{uid}/disable", headers=t.auth)
    assert r.status_code == 200, r.text
    now = (await client.get(f"{API}/users/{uid}", headers=t.auth)).json()
    assert (now["status"], now["roles"]) == ("disabled", ["ghost"])


async def test_every_membership_change_is_seen_by_the_next_read(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    uid = await _member(client, t)
    url = f"{API}/users/{uid}"
    assert (await client.get(url, headers=t.auth)).json()["status"] == "active"
    assert (await client.post(f"{url}/disable", headers=t.auth)).status_code == 200
    assert (await client.get(url, headers=t.auth)).json()["status"] == "disabled"
    assert (await client.post(f"{url}/enable", headers=t.auth)).status_code == 200
    assert (await client.get(url, headers=t.auth)).json()["status"] == "active"
    assert (await client.delete(url, headers=t.auth)).status_code == 204
    gone = await client.get(url, headers=t.auth)
    assert gone.status_code == 404, gone.text
    assert (await client.get(url, headers=t.auth)).status_code == 404  # cached as absent
    async with admin_connection(platform.db, as_owner=False) as conn:
        email = await conn.fetchval(
            "SELECT email FROM tenantry.users WHERE id = $1", uuid.UUID(uid)
        )
    r = await client.post(f"{API}/users", headers=t.auth, json={"email": email, "roles": []})
    assert r.status_code == 201, r.text
    assert (await client.get(url, headers=t.auth)).json()["status"] == "active"


async def test_a_change_reaches_another_process(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    uid = await _member(client, t)
    assert (await client.get(f"{API}/users/{uid}", headers=t.auth)).status_code == 200
    other = build_cache(platform.db, CacheSettings())
    await other.start()
    try:
        key = f"{PREFIX}:{uid}"
        with tenant_scope(t.tenant):
            assert (await other.get(key))["status"] == "active"  # now in its L1
            assert (await client.post(f"{API}/users/{uid}/disable", headers=t.auth)).is_success
            for _ in range(100):
                if await other.get(key) is None:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the other process kept the old profile")
    finally:
        await other.close()


async def test_a_tenant_never_reads_another_tenant_s_cached_profile(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    uid = await _member(client, a)
    assert (await client.get(f"{API}/users/{uid}", headers=a.auth)).status_code == 200
    assert (await client.get(f"{API}/users/{uid}", headers=a.auth)).status_code == 200  # cached
    r = await client.get(f"{API}/users/{uid}", headers=b.auth)
    assert r.status_code == 404, r.text
    assert uid not in r.text
