"""The permission lookup through the platform cache (``authz:permissions``, 60 s): another
process's engine takes the rules from the cache instead of the tenant's store, a role change
is seen through the cache on every process (and by one started after it), snapshot hits
count as permission-cache hits, and decisions are timed in the latency histogram."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from tenantry.capabilities.authz import Authz
from tenantry.capabilities.authz.engine import PERMISSIONS_KEY, PERMISSIONS_PREFIX
from tenantry.capabilities.cache.api import CacheSettings, build_cache
from tenantry.kernel.observability import metrics
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import Principal, tenant_scope
from tenantry.testing import cache_lookups
from tests.conftest import MakeTenant


def decisions(source: str) -> float:
    for metric in metrics.AUTHZ_DECISION_DURATION.collect():
        for s in metric.samples:
            if s.name.endswith("_count") and s.labels["source"] == source:
                return s.value
    return 0.0


@asynccontextmanager
async def process(platform: Platform, **kw: float) -> AsyncIterator[Authz]:
    """An engine with its own cache (L1, LISTEN connections): another app process."""
    cache = build_cache(platform.db, CacheSettings())
    await cache.start()
    engine = Authz(
        platform.db,
        platform.expand_actions,
        platform.permissions,
        cache_ttl_s=kw.get("cache_ttl_s", 0.0),
        snapshot_ttl_s=kw.get("snapshot_ttl_s", 0.0),
        audit_decisions=False,
        cache=cache,
    )
    await engine.listen()
    try:
        yield engine
    finally:
        await engine.close()
        await cache.close()


async def until(probe: Callable[[], object]) -> None:
    for _ in range(200):
        if await probe():  # type: ignore[misc]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never")


async def test_another_process_takes_the_rules_from_the_cache(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = Principal("someone", t.tenant.id, roles=frozenset({"admin"}))
    async with process(platform) as first, process(platform) as second:
        with tenant_scope(t.tenant):
            assert (await first.check(p, "audit:read")).allowed
            loads = first.store_loads + second.store_loads
            assert loads <= 1  # at most one store read: the entry may be there already
            # no snapshot, no decision cache: every check is a permission lookup
            for action in ("audit:read", "identity:admin", "audit:read"):
                assert (await second.check(p, action)).allowed
            assert (await first.check(p, "identity:admin")).allowed
        assert first.store_loads + second.store_loads == loads


async def test_a_role_change_is_seen_through_the_cache_on_every_process(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = Principal("someone", t.tenant.id, roles=frozenset({"viewer"}))
    async with process(platform, snapshot_ttl_s=3600, cache_ttl_s=3600) as other:
        with tenant_scope(t.tenant):
            assert not (await other.check(p, "audit:read")).allowed
            assert not (await platform.use(Authz).check(p, "audit:read")).allowed
            r = await client.post(
                "/api/v1/identity/roles",
                headers=t.auth,
                json={"name": "viewer", "actions": ["audit:read"]},
            )
            assert r.status_code == 201, r.text

            async def allowed() -> bool:
                return (await other.check(p, "audit:read")).allowed

            await until(allowed)
            assert (await platform.use(Authz).check(p, "audit:read")).allowed
    # a process started after the change reads the cache: the refreshed entry, not the old
    async with process(platform) as late:
        with tenant_scope(t.tenant):
            assert (await late.check(p, "audit:read")).allowed
            # the refreshed entry, or one load when a listening process's delete on the
            # change's NOTIFY (ReadPath.refresh) came after that refresh
            assert late.store_loads <= 1


async def test_a_change_nobody_read_since_is_not_served_from_the_cache_to_a_later_process(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = Principal("someone", t.tenant.id, roles=frozenset({"viewer"}))
    async with process(platform) as early:
        with tenant_scope(t.tenant):
            assert not (await early.check(p, "audit:read")).allowed  # the rules are cached
    r = await client.post(
        "/api/v1/identity/roles", headers=t.auth, json={"name": "viewer", "actions": ["audit:read"]}
    )
    assert r.status_code == 201, r.text
    probe = build_cache(platform.db, CacheSettings())  # no L1 before start(): the table
    try:
        with tenant_scope(t.tenant):

            async def dropped() -> bool:
                return await probe.get(PERMISSIONS_KEY) is None

            await until(dropped)  # the listening engines dropped it on the change's NOTIFY
            async with process(platform) as late:
                assert (await late.check(p, "audit:read")).allowed
                assert late.store_loads == 1
    finally:
        await probe.close()


async def test_snapshot_hits_count_as_permission_cache_hits_and_decisions_are_timed(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = Principal("someone", t.tenant.id, roles=frozenset({"admin"}))
    before = cache_lookups(PERMISSIONS_PREFIX)
    evaluated, cached = decisions("evaluated"), decisions("decision_cache")
    async with process(platform, snapshot_ttl_s=3600, cache_ttl_s=3600) as engine:
        with tenant_scope(t.tenant):
            for action in ("audit:read", "identity:admin", "authz:admin"):
                assert (await engine.check(p, action)).allowed
            assert (await engine.check(p, "audit:read")).allowed  # the decision cache
    after = cache_lookups(PERMISSIONS_PREFIX)
    assert after["l1_hit"] - before["l1_hit"] == 2  # the snapshot served two lookups
    assert after["hit"] + after["miss"] - before["hit"] - before["miss"] == 1
    assert decisions("evaluated") - evaluated == 3
    assert decisions("decision_cache") - cached == 1
    assert b"tenantry_authz_decision_duration_seconds_bucket" in metrics.render()
