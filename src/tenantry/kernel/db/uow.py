"""The unit of work: one transaction, in one tenant's store, with the tenant set.

The tenant id and the search_path are set transaction-locally in one statement
(``set_config(..., true)``), so a pooled connection never carries a tenant into the next
transaction and the platform stays safe behind a transaction-mode pooler. Handlers receive a
unit of work and never see a raw connection or pass a tenant id into SQL.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import Tenant

PLATFORM_SCHEMA = "tenantry"
Connection = asyncpg.Connection | PoolConnectionProxy


class UnitOfWork:
    SET_TENANT = (
        "SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true),"
        " set_config('app.scope', 'tenant', true)"
    )
    SET_PLATFORM = (
        "SELECT set_config('app.tenant_id', '', true), set_config('search_path', $1, true),"
        " set_config('app.scope', 'platform', true)"
    )

    __slots__ = ("_conn", "principal", "tenant")

    def __init__(
        self, conn: Connection, tenant: Tenant | None, principal: Principal | None
    ) -> None:
        self._conn = conn
        self.tenant = tenant
        self.principal = principal

    @property
    def tenant_id(self) -> UUID:
        """The tenant of this unit of work, for INSERTs (RLS checks it anyway)."""
        if self.tenant is None:
            raise RuntimeError("platform unit of work has no tenant")
        return self.tenant.id

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._conn.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._conn.fetchrow(sql, *args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self._conn.execute(sql, *args)
        return status

    async def executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        await self._conn.executemany(sql, args)

    async def copy_from_query(self, sql: str, *args: Any, output: Any, **opts: Any) -> str:
        """``COPY (sql) TO STDOUT`` in this transaction (and snapshot), streamed to ``output``
        (a callable receiving bytes chunks, or a file); ``opts`` as asyncpg's (format...)."""
        status: str = await self._conn.copy_from_query(sql, *args, output=output, **opts)
        return status

    def cursor(self, sql: str, *args: Any, prefetch: int | None = None) -> Any:
        """A server-side cursor over ``sql`` in this transaction (``async for``)."""
        return self._conn.cursor(sql, *args, prefetch=prefetch)

    def savepoint(self) -> Any:
        """A nested transaction (SAVEPOINT) inside this unit of work."""
        return self._conn.transaction()

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY, delivered on commit."""
        await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)
