"""Cache rows (``tenantry.cache_entries``): one entry in the tenant's context. The cache has
no HTTP API of its own, so this seeder uses the cache of the platform behind the test
client (httpx keeps its transport private; the ASGI app carries the platform)."""

from __future__ import annotations

import httpx

from tenantry.capabilities.cache.cache import Cache
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import TenantFixture


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    cache: Cache = app.state.platform.use(Cache)
    with tenant_scope(tenant.tenant):
        await cache.set("isolation:probe", {"slug": tenant.tenant.slug}, ttl_s=3600, tags=["t"])
        assert await cache.get("isolation:probe") == {"slug": tenant.tenant.slug}
