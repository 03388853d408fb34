"""PostgreSQL backend: an UNLOGGED table under RLS, one round trip per call.

Each call is one ``SELECT tenantry.cache_*(tenant, ...)`` on a pooled connection outside any
transaction: the function sets the tenant transaction-locally for its own statement, so RLS
applies exactly as in a unit of work, without BEGIN/SET/COMMIT round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from tenantry.capabilities.cache import sql

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database


class PgBackend:
    name = "postgres"

    def __init__(self, db: Database, origin: str) -> None:
        self.db = db
        self.origin = origin

    async def get(self, tenant: UUID, key: str) -> bytes | None:
        pool = await self.db.pool()
        value: bytes | None = await pool.fetchval(sql.GET, tenant, key)
        return value

    async def set(
        self, tenant: UUID, key: str, value: bytes, ttl_s: float | None, tags: Sequence[str]
    ) -> None:
        pool = await self.db.pool()
        await pool.execute(sql.SET, tenant, key, value, ttl_s, list(tags), self.origin)

    async def delete(self, tenant: UUID, key: str) -> bool:
        pool = await self.db.pool()
        return bool(await pool.fetchval(sql.DELETE, tenant, key, self.origin))

    async def invalidate_tags(self, tenant: UUID, tags: Sequence[str]) -> int:
        pool = await self.db.pool()
        return int(await pool.fetchval(sql.INVALIDATE_TAGS, tenant, list(tags), self.origin))

    async def sweep(self, batch: int = 10_000) -> int:
        """Delete expired rows of every tenant (platform scope), in batches."""
        total = 0
        while True:
            async with self.db.platform_unit_of_work() as uow:
                status = await uow.execute(sql.SWEEP, batch)
            n = int(status.split()[-1])
            total += n
            if n < batch:
                return total

    async def close(self) -> None:
        return None
