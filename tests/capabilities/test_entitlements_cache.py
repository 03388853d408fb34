"""Tenant settings (plan overrides) through the platform cache (``entitlements:settings``,
3,600 s): another process takes them from the cache, an override set through the API is
seen at once on this process and, after its NOTIFY, on another one (and by a process
started later); one tenant's override is never another's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tenantry.capabilities.cache.api import CacheSettings, build_cache
from tenantry.capabilities.entitlements.plans import Plans
from tenantry.kernel.platform import Platform
from tests.capabilities.test_authz_platform_actions import client_token, operator_tenant
from tests.conftest import MakeTenant


@asynccontextmanager
async def process(platform: Platform, ttl: float = 0.0) -> AsyncIterator[Plans]:
    """Plans with its own cache (L1, LISTEN connections): another app process."""
    cache = build_cache(platform.db, CacheSettings())
    await cache.start()
    plans = Plans(platform.db, {}, ttl, None, cache)
    await plans.listen()
    try:
        yield plans
    finally:
        await plans.close()
        await cache.close()


async def test_another_process_takes_the_override_from_the_cache(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    async with process(platform) as first, process(platform) as second:
        for _ in range(3):
            await first.for_tenant(t.tenant)
        assert first.loads == 1  # then its L1
        for _ in range(3):
            await second.for_tenant(t.tenant)
        assert second.loads == 0  # the shared entry


async def test_an_override_is_seen_at_once_here_and_after_its_notify_elsewhere(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t, neighbour = await make_tenant(), await make_tenant()
    here = platform.use(Plans)
    before = (await here.for_tenant(t.tenant)).quotas["max_users"]
    assert before is not None  # the free plan's limit
    async with process(platform, ttl=3600) as other:
        assert (await other.for_tenant(t.tenant)).quotas["max_users"] == before
        assert (await other.for_tenant(neighbour.tenant)).quotas["max_users"] == before
        auth = await client_token(platform, client, await operator_tenant(platform), ["admin"])
        r = await client.put(
            f"/api/v1/entitlements/tenants/{t.tenant.slug}/override",
            headers=auth,
            json={"quotas": {"max_users": before + 41}},
        )
        assert r.status_code == 200, r.text
        assert (await here.for_tenant(t.tenant)).quotas["max_users"] == before + 41
        for _ in range(200):
            if (await other.for_tenant(t.tenant)).quotas["max_users"] == before + 41:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the other process kept the old override")
        # the neighbour's settings are its own: same key, its own entry
        assert (await other.for_tenant(neighbour.tenant)).quotas["max_users"] == before
        assert (await here.for_tenant(neighbour.tenant)).quotas["max_users"] == before
    async with process(platform) as late:
        assert (await late.for_tenant(t.tenant)).quotas["max_users"] == before + 41
        # the entry refreshed above, or (when a listening process's delete on the change's
        # NOTIFY came after that refresh: ReadPath.refresh) one load from the table
        assert late.loads <= 1
