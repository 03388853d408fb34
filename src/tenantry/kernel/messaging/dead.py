"""Dead letters across every tenant store: list, replay (back into the outbox, for the one
consumer that failed when it was a consumer's dead letter), discard. Operator tools: each
store is read in its tenant's own unit of work, so RLS applies here too. Tenants still being
provisioned are left out (``catalog.ready``): their store may not exist yet.

A replay or a discard is audited (``messaging.dead.replayed``, ``messaging.dead.discarded``,
resource ``dead_letter:<id>``) in the log of the tenant whose store held the dead letter, in
the unit of work that moved or deleted it: both commit or neither. The record names the
message (id, name, kind, target, attempts, last error), never its payload."""

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


async def _on_dead(
    db: Database, catalog: TenantCatalog, dead_id: UUID, sql: str, *, replayed: bool
) -> bool:
    for t in await catalog.ready():
        async with tenant_unit_of_work(db, t) as uow:
            row = await uow.fetchrow(sql, dead_id)
            if row is None:
                continue
            uow.audit(
                "messaging.dead.replayed" if replayed else "messaging.dead.discarded",
                f"dead_letter:{dead_id}",
                before={
                    "message_id": str(row["message_id"]),
                    "name": row["name"],
                    "kind": row["kind"],
                    "target": row["target"],
                    "attempts": row["attempts"],
                    "last_error": row["last_error"],
                },
                after={"outbox": str(row["message_id"])} if replayed else None,
            )
            return True
    return False


async def replay(db: Database, catalog: TenantCatalog, dead_id: UUID) -> bool:
    return await _on_dead(db, catalog, dead_id, q.REPLAY_DEAD, replayed=True)


async def discard(db: Database, catalog: TenantCatalog, dead_id: UUID) -> bool:
    return await _on_dead(db, catalog, dead_id, q.DISCARD_DEAD, replayed=False)
