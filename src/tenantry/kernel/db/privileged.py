"""Kernel-only doors to the database: admin and owner connections, and units of work for a
tenant given explicitly rather than taken from the ambient context.

A module (and a capability) reaches its data through ``Database.unit_of_work()`` and
``Database.platform_unit_of_work()``, for the ambient tenant: the request's, the consumer's,
the job's, or the one a caller enters with ``tenant_scope(tenant)``. What is here bypasses
that: an admin connection runs as the server's admin role (or ``SET ROLE`` owner), free of
RLS; a unit of work for an explicit tenant lets the caller pick whose rows it touches. The
kernel needs both (migrations, provisioning, the outbox relay across every store, the
operator's tools); modules do not, and import-linter forbids them to import this module
(tests/architecture/contracts.py generates the contract for every module; the capabilities'
is in pyproject, with the one exception it names).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from tenantry.kernel.db.database import Database, init_connection
from tenantry.kernel.db.uow import Connection, UnitOfWork
from tenantry.kernel.tenancy.model import Tenant


def admin_dsn(db: Database, server: str = "default", database: str | None = None) -> str:
    """The admin URL of ``server`` with ``database`` (default: the main database)."""
    return db._admin_dsn(server, database)


@contextlib.asynccontextmanager
async def admin_connection(
    db: Database, server: str = "default", database: str | None = None, *, as_owner: bool = True
) -> AsyncIterator[asyncpg.Connection]:
    """A short-lived admin connection (migrations, provisioning), as the owner role unless
    ``as_owner=False``."""
    conn: asyncpg.Connection = await asyncpg.connect(
        db._admin_dsn(server, database),
        server_settings={"application_name": "tenantry-admin"},
    )
    try:
        await init_connection(conn)
        if as_owner:
            await conn.execute(f'SET ROLE "{db.settings.owner_role}"')
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def owner_connection(db: Database) -> AsyncIterator[Connection]:
    """An admin connection to the main database as the owner role, from a small pool (at most
    2, closed after a minute idle): for short catalog writes on hot paths (the onboarding saga
    writes the catalog row twice; a fresh connection is a new server process each time). The
    role is set on every acquire (the pool's reset drops it)."""
    pool = await db._owner_pool()
    async with pool.acquire() as conn:
        await conn.execute(f'SET ROLE "{db.settings.owner_role}"')
        yield conn


async def fetch_admin(db: Database, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one statement on an admin connection to the main database (not as the owner)."""
    async with admin_connection(db, as_owner=False) as conn:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows


@contextlib.asynccontextmanager
async def tenant_unit_of_work(db: Database, tenant: Tenant) -> AsyncIterator[UnitOfWork]:
    """A unit of work in ``tenant``'s store, without a principal (CLI, provisioning, the relay
    and the operator's tools, which walk every tenant)."""
    async with db._unit_of_work_for(tenant, None) as uow:
        yield uow


@contextlib.asynccontextmanager
async def platform_unit_of_work_as(
    db: Database, tenant: Tenant | None
) -> AsyncIterator[UnitOfWork]:
    """The platform tables seen as ``tenant`` (RLS and the tenant filter limit them to its
    rows), for a tenant given explicitly; None: explicit platform scope."""
    async with db._platform_unit_of_work_for(tenant) as uow:
        yield uow
