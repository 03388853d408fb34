"""The warming job (``cache-warm``, a maintenance job: at start-up and every maintenance
interval; ``tenantry cache warm`` after a deploy): it fills every read path's hot keys
(permission rules, tenant settings) of every ready tenant."""

from __future__ import annotations

from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tests.cli import cli as run
from tests.conftest import MakeTenant

HOT = {"authz:permissions:rules", "entitlements:settings:override"}


async def keys_of(platform: Platform, tenant_ids: list[object]) -> dict[object, set[str]]:
    async with admin_connection(platform.db, as_owner=False) as conn:
        rows = await conn.fetch(
            "SELECT tenant_id, key FROM tenantry.cache_entries WHERE tenant_id = ANY($1)",
            tenant_ids,
        )
    out: dict[object, set[str]] = {t: set() for t in tenant_ids}
    for r in rows:
        out[r["tenant_id"]].add(r["key"])
    return out


async def clear(platform: Platform, tenant_ids: list[object]) -> None:
    async with admin_connection(platform.db, as_owner=False) as conn:
        await conn.execute(
            "DELETE FROM tenantry.cache_entries WHERE tenant_id = ANY($1)", tenant_ids
        )


async def test_the_maintenance_job_warms_every_ready_tenant(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant("schema")
    ids: list[object] = [a.tenant.id, b.tenant.id]
    await clear(platform, ids)
    assert await keys_of(platform, ids) == {a.tenant.id: set(), b.tenant.id: set()}
    out = await platform.observability.maintenance()
    warmed = out["cache-warm"]
    assert warmed["authz:permissions"] >= 2
    assert warmed["entitlements:settings"] >= 2
    for keys in (await keys_of(platform, ids)).values():
        assert keys >= HOT


async def test_tenantry_cache_warm_after_a_deploy(
    settings: Settings, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await clear(platform, [t.tenant.id])
    r = run(settings, "cache", "warm")
    assert r.returncode == 0, r.stderr
    assert "authz:permissions:" in r.stdout
    assert (await keys_of(platform, [t.tenant.id]))[t.tenant.id] >= HOT
