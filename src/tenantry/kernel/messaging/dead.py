"""Dead letters across every tenant store: list, replay (back into the outbox, for the one
consumer that failed when it was a consumer's dead letter), discard. Operator tools: each
store is read in its tenant's own unit of work, so RLS applies here too. Tenants still being
provisioned are left out (``catalog.ready``): their store may not exist yet."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.messaging import sql as q
from tenantry.kernel.tenancy.catalog import TenantCatalog


async def list_dead(db: Database, catalog: TenantCatalog) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in await catalog.ready():
        async with tenant_unit_of_work(db, t) as uow:
            for r in await uow.fetch(q.LIST_DEAD):
                out.append({"tenant": t.slug, **dict(r)})
    return out


async def _on_dead(db: Database, catalog: TenantCatalog, dead_id: UUID, sql: str) -> bool:
    for t in await catalog.ready():
        async with tenant_unit_of_work(db, t) as uow:
            if await uow.fetch(sql, dead_id):
                return True
    return False


async def replay(db: Database, catalog: TenantCatalog, dead_id: UUID) -> bool:
    return await _on_dead(db, catalog, dead_id, q.REPLAY_DEAD)


async def discard(db: Database, catalog: TenantCatalog, dead_id: UUID) -> bool:
    return await _on_dead(db, catalog, dead_id, q.DISCARD_DEAD)
