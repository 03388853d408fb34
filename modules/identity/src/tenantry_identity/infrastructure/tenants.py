"""The tenant catalog as identity reads it: by id through the catalog's cache, and by slug
through the same cache (the token request names its tenant by slug, on every request).

The catalog caches by id (entries live ``catalog_ttl_s`` and are dropped on every process by
``NOTIFY tenantry_catalog``); a slug names the same tenant for its whole life, so this keeps
slug -> id for the slugs it has found and reads the tenant by id. A cached slug whose tenant
is gone or no longer has that slug is looked up again; an unknown slug is never cached (a
tenant may be created under it)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from tenantry.kernel.tenancy.model import Tenant

#: At most this many slugs remembered (only slugs of tenants that exist get in).
SLUGS_MAX = 100_000


class Catalog(Protocol):
    """What this needs of ``kernel.tenancy.catalog.TenantCatalog``."""

    async def get(self, tenant_id: UUID) -> Tenant | None: ...

    async def by_slug(self, slug: str) -> Tenant | None: ...


class CatalogTenants:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._ids: dict[str, UUID] = {}

    async def by_slug(self, slug: str) -> Tenant | None:
        tenant_id = self._ids.get(slug)
        if tenant_id is not None:
            tenant = await self.catalog.get(tenant_id)
            if tenant is not None and tenant.slug == slug:
                return tenant
            self._ids.pop(slug, None)
        tenant = await self.catalog.by_slug(slug)
        if tenant is not None:
            if len(self._ids) >= SLUGS_MAX:
                self._ids.pop(next(iter(self._ids)))
            self._ids[slug] = tenant.id
        return tenant

    async def by_id(self, tenant_id: UUID) -> Tenant | None:
        return await self.catalog.get(tenant_id)
