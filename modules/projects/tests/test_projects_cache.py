"""The project list reads through the platform cache (``projects:list``, 600 s): a second
read is a cache hit and issues no query, every change of a project is seen by the next
list on this process and on another, and one tenant's cached page is never another's."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tenantry.capabilities.cache import Cache
from tenantry.capabilities.cache.api import CacheSettings, build_cache
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import MakeTenant, TenantFixture, cache_hits, cache_lookups

API = "/api/v1/projects"
PREFIX = "projects:list"


async def _project(client: httpx.AsyncClient, t: TenantFixture, name: str) -> dict[str, Any]:
    key = "C" + uuid.uuid4().hex[:6].upper()
    r = await client.post(f"{API}/projects", json={"key": key, "name": name}, headers=t.auth)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def _names(client: httpx.AsyncClient, t: TenantFixture) -> dict[str, str]:
    r = await client.get(f"{API}/projects", headers=t.auth)
    assert r.status_code == 200, r.text
    return {p["name"]: p["status"] for p in r.json()["items"]}


async def test_a_second_list_is_a_hit_and_reads_no_row(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """The row is changed behind the service's back: the cached list still shows the old
    name (no query was issued for it), until a change through the service invalidates."""
    t = await make_tenant()
    p = await _project(client, t, "Alpha")
    assert await _names(client, t) == {"Alpha": "active"}
    before = cache_hits(PREFIX)
    with tenant_scope(t.tenant):
        async with platform.db.unit_of_work() as uow:
            await uow.execute("UPDATE projects SET name = 'Behind' WHERE id = $1", p["id"])
    assert await _names(client, t) == {"Alpha": "active"}
    assert cache_hits(PREFIX) == before + 1
    r = await client.patch(f"{API}/projects/{p['id']}", json={"description": "x"}, headers=t.auth)
    assert r.status_code == 200, r.text
    assert await _names(client, t) == {"Behind": "active"}


async def test_every_change_is_seen_by_the_next_list(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = await _project(client, t, "Before")
    assert await _names(client, t) == {"Before": "active"}
    assert await _names(client, t) == {"Before": "active"}  # cached now
    r = await client.patch(f"{API}/projects/{p['id']}", json={"name": "After"}, headers=t.auth)
    assert r.status_code == 200, r.text
    assert await _names(client, t) == {"After": "active"}
    r = await client.post(f"{API}/projects/{p['id']}/archive", headers=t.auth)
    assert r.status_code == 200, r.text
    assert await _names(client, t) == {"After": "archived"}
    r = await client.post(f"{API}/projects/{p['id']}/restore", headers=t.auth)
    assert r.status_code == 200, r.text
    assert await _names(client, t) == {"After": "active"}
    await _project(client, t, "Second")
    assert await _names(client, t) == {"After": "active", "Second": "active"}


async def test_a_new_task_is_seen_in_the_next_list(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A task's creation raises its project's task_count and updated_at (the list shows
    both): the cached pages go with it."""
    t = await make_tenant()
    p = await _project(client, t, "Tasks")

    async def listed() -> dict[str, Any]:
        r = await client.get(f"{API}/projects", headers=t.auth)
        assert r.status_code == 200, r.text
        item: dict[str, Any] = r.json()["items"][0]
        return item

    before = await listed()
    assert before["task_count"] == 0
    assert await listed() == before  # cached now
    r = await client.post(
        f"{API}/projects/{p['id']}/tasks", json={"title": "first"}, headers=t.auth
    )
    assert r.status_code == 201, r.text
    after = await listed()
    assert after["task_count"] == 1
    assert after["updated_at"] != before["updated_at"]


async def test_a_change_reaches_another_process_cache(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A second Cache with its own L1 and LISTEN connection stands for another process: it
    holds the tenant's cached page in its L1; the write drops it there too."""
    t = await make_tenant()
    await _project(client, t, "One")
    assert await _names(client, t) == {"One": "active"}
    async with admin_connection(platform.db, as_owner=False) as conn:
        keys = await conn.fetch(
            "SELECT key FROM tenantry.cache_entries WHERE tenant_id = $1 AND key LIKE $2",
            t.tenant.id,
            f"{PREFIX}:%",
        )
    assert len(keys) == 1
    key = keys[0]["key"]
    other = build_cache(platform.db, CacheSettings())
    await other.start()
    try:
        with tenant_scope(t.tenant):
            cached = await other.get(key)
            assert [i["name"] for i in cached[0]] == ["One"]
            assert await other.get(key) == cached  # from its L1 now
            await _project(client, t, "Two")
            for _ in range(100):
                if await other.get(key) is None:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the other process kept the old page")
        assert set(await _names(client, t)) == {"One", "Two"}
    finally:
        await other.close()


async def test_a_tenant_never_gets_another_tenant_s_cached_page(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    await _project(client, a, "A-only")
    assert await _names(client, a) == {"A-only": "active"}
    assert await _names(client, a) == {"A-only": "active"}  # A's page is cached
    before = cache_lookups(PREFIX)["miss"]
    assert await _names(client, b) == {}  # the same query, its own key: a miss, B's rows
    assert cache_lookups(PREFIX)["miss"] == before + 1
    await _project(client, b, "B-only")
    assert await _names(client, b) == {"B-only": "active"}
    assert await _names(client, a) == {"A-only": "active"}
    cache = platform.use(Cache)
    async with admin_connection(platform.db, as_owner=False) as conn:
        rows = await conn.fetch(
            "SELECT tenant_id, key FROM tenantry.cache_entries WHERE key LIKE $1 "
            "AND tenant_id = ANY($2)",
            f"{PREFIX}:%",
            [a.tenant.id, b.tenant.id],
        )
    by_tenant = {r["tenant_id"]: r["key"] for r in rows}
    assert set(by_tenant) == {a.tenant.id, b.tenant.id}
    with tenant_scope(b.tenant):  # B reading A's very key gets B's own entry
        page = await cache.get(by_tenant[a.tenant.id])
    assert [i["name"] for i in page[0]] == ["B-only"]
