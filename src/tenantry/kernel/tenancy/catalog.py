"""The tenant catalog (platform schema) with an in-process cache.

Lookups on the request path (token → tenant) hit the cache; entries live ``ttl`` seconds and
are dropped at once on every process when the catalog changes (``NOTIFY tenantry_catalog``,
sent by provisioning and status changes, received by ``listen``).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

import asyncpg

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.sql import queries as q
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus

_log = logging.getLogger(__name__)
CHANNEL = "tenantry_catalog"


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


class TenantCatalog:
    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self.db = db
        self.ttl = ttl
        self._by_id: dict[UUID, tuple[float, Tenant | None]] = {}

    async def get(self, tenant_id: UUID) -> Tenant | None:
        hit = self._by_id.get(tenant_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.SELECT_TENANT_BY_ID, tenant_id)
        tenant = tenant_from_row(row) if row else None
        self._by_id[tenant_id] = (now, tenant)
        return tenant

    async def by_slug(self, slug: str) -> Tenant | None:
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.SELECT_TENANT_BY_SLUG, slug)
        if row is None:
            return None
        tenant = tenant_from_row(row)
        self._by_id[tenant.id] = (time.monotonic(), tenant)
        return tenant

    async def all(self) -> list[Tenant]:
        async with self.db.platform_unit_of_work() as uow:
            rows = await uow.fetch(q.SELECT_TENANTS)
        return [tenant_from_row(r) for r in rows]

    def invalidate(self, tenant_id: UUID | None = None) -> None:
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
