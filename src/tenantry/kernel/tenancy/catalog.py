"""The tenant catalog (platform schema) with an in-process cache.

Lookups on the request path (token → tenant) hit the cache; entries live ``ttl`` seconds and
are dropped at once on every process when the catalog changes (``NOTIFY tenantry_catalog``,
sent by provisioning and status changes, received by ``listen``).

``ready()`` is the one notion of "tenants ready for work": those whose provisioning finished
(active or suspended; a ``provisioning`` row may have no schema or database yet, or never get
one if its onboarding crashed). Every start-up check and maintenance loop iterates it, never
``all()``: a tenant still being provisioned is skipped (with one warning per process), so a
crashed onboarding cannot stop ``serve`` or ``worker`` from starting.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

import asyncpg

from tenantry.kernel.db import sql as q
from tenantry.kernel.db.database import Database
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus

_log = logging.getLogger(__name__)
CHANNEL = "tenantry_catalog"
#: What connecting to or using a store that is not there raises (a tenant database or schema
#: dropped under a ready tenant, or by a compensation racing a maintenance loop): loops that
#: visit every store catch these, log a warning and go on with the next store.
STORE_MISSING: tuple[type[Exception], ...] = (
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidSchemaNameError,
)


def tenant_from_row(row: asyncpg.Record | dict[str, Any]) -> Tenant:
    return Tenant(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        isolation=IsolationMode(row["isolation"]),
        status=TenantStatus(row["status"]),
        plan=row["plan"],
        server=row["server"],
        database=row["database"],
        schema=row["schema_name"],
        created_at=row["created_at"],
    )


def is_ready(tenant: Tenant) -> bool:
    """Provisioning finished: the tenant's store exists and is migrated (see ``ready``)."""
    return tenant.status is not TenantStatus.PROVISIONING


class TenantCatalog:
    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self.db = db
        self.ttl = ttl
        self._by_id: dict[UUID, tuple[float, Tenant | None]] = {}
        self._warned: set[UUID] = set()  # provisioning tenants already reported as skipped
        #: Bumped by every invalidation: a read that raced one is returned but not kept (else
        #: a row read just before a change committed, stored just after its NOTIFY, stayed
        #: cached for ``ttl``: a tenant activated elsewhere answered "provisioning" here).
        self._generation = 0

    async def get(self, tenant_id: UUID) -> Tenant | None:
        hit = self._by_id.get(tenant_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        generation = self._generation
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.SELECT_TENANT_BY_ID, tenant_id)
        tenant = tenant_from_row(row) if row else None
        if generation == self._generation:
            self._by_id[tenant_id] = (now, tenant)
        return tenant

    async def by_slug(self, slug: str) -> Tenant | None:
        generation, now = self._generation, time.monotonic()
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.SELECT_TENANT_BY_SLUG, slug)
        if row is None:
            return None
        tenant = tenant_from_row(row)
        if generation == self._generation:
            self._by_id[tenant.id] = (now, tenant)
        return tenant

    async def all(self) -> list[Tenant]:
        async with self.db.platform_unit_of_work() as uow:
            rows = await uow.fetch(q.SELECT_TENANTS)
        return [tenant_from_row(r) for r in rows]

    async def ready(self) -> list[Tenant]:
        """Tenants ready for work (provisioning finished): what start-up checks, migrations,
        maintenance loops, the relay and the job worker iterate. Tenants still being
        provisioned are left out, each logged once per process as a warning."""
        out: list[Tenant] = []
        for tenant in await self.all():
            if is_ready(tenant):
                out.append(tenant)
            elif tenant.id not in self._warned:
                self._warned.add(tenant.id)
                _log.warning(
                    "tenant %s (%s) is still being provisioned: skipped until its onboarding "
                    "completes or is compensated",
                    tenant.slug,
                    tenant.id,
                )
        return out

    def invalidate(self, tenant_id: UUID | None = None) -> None:
        self._generation += 1
        if tenant_id is None:
            self._by_id.clear()
        else:
            self._by_id.pop(tenant_id, None)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            self.invalidate(UUID(str(payload)))
        except ValueError:
            self.invalidate()

    async def listen(self) -> None:
        """Subscribe to catalog changes (over the process's shared LISTEN connection)."""
        await self.db.listen(CHANNEL, self._on_notify)

    async def close(self) -> None:
        await self.db.unlisten(CHANNEL, self._on_notify)
