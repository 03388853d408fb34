"""Provisioning: create a tenant in any isolation mode, change its status.

Creation is all-or-nothing: the catalog row is written as ``provisioning``, storage is made
(nothing for ``shared``; a schema, or a database, migrated to the current version), module
hooks seed the tenant's data in one unit of work, and only then is the tenant ``active``. A
failure at any step undoes the earlier ones (drops the schema or database, deletes the row).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tenantry.kernel.db.bootstrap import create_tenant_database, drop_tenant_database, ensure_roles
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.migrations import Migrator, Store
from tenantry.kernel.db.sql import queries as q
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.errors import Conflict, ValidationFailed
from tenantry.kernel.tenancy.catalog import TenantCatalog, tenant_from_row
from tenantry.kernel.tenancy.model import (
    IsolationMode,
    Tenant,
    TenantStatus,
    database_for,
    schema_for,
    validate_slug,
)


@dataclass
class ProvisionRequest:
    slug: str
    name: str
    isolation: IsolationMode = IsolationMode.SHARED
    plan: str = "free"
    server: str = "default"
    options: dict[str, Any] = field(default_factory=dict)  # e.g. admin_email, admin_password


ProvisionHook = Callable[[UnitOfWork, Tenant, dict[str, Any]], Awaitable[dict[str, Any] | None]]


@dataclass
class ProvisionResult:
    tenant: Tenant
    outputs: dict[str, Any]


class Provisioner:
    def __init__(
        self,
        db: Database,
        migrator: Migrator,
        catalog: TenantCatalog,
        hooks: Sequence[ProvisionHook] = (),
    ) -> None:
        self.db = db
        self.migrator = migrator
        self.catalog = catalog
        self.hooks = list(hooks)

    async def create(self, req: ProvisionRequest) -> ProvisionResult:
        try:
            validate_slug(req.slug)
        except ValueError as exc:
            raise ValidationFailed(
                str(exc), errors=[{"field": "slug", "message": str(exc)}]
            ) from None
        if not req.name.strip():
            raise ValidationFailed("name must not be empty", errors=[{"field": "name"}])
        self.db.server_url(req.server)  # unknown server: clear error before anything is written
        mode = IsolationMode(req.isolation)
        tenant_id = uuid.uuid4()
        database = database_for(req.slug) if mode is IsolationMode.DATABASE else None
        schema = schema_for(req.slug, mode)
        async with self.db.admin_connection() as conn:
            try:
                await conn.execute(
                    q.INSERT_TENANT,
                    tenant_id,
                    req.slug,
                    req.name.strip(),
                    mode.value,
                    req.plan,
                    req.server,
                    database,
                    schema,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"a tenant with slug {req.slug!r} already exists") from None
            row = await conn.fetchrow(q.SELECT_TENANT_BY_ID, tenant_id)
        assert row is not None
        tenant = tenant_from_row(row)
        storage_made = False
        try:
            if mode is IsolationMode.SCHEMA:
                storage_made = True
                await self.migrator.migrate_store(Store.for_tenant(tenant))
            elif mode is IsolationMode.DATABASE:
                assert database is not None
                async with self.db.admin_connection(req.server, "postgres", as_owner=False) as c:
                    await ensure_roles(c, self.db.settings)
                    storage_made = True
                    await create_tenant_database(c, database, self.db.settings)
                await self.migrator.migrate_store(Store.for_tenant(tenant))
            outputs: dict[str, Any] = {}
            async with self.db.tenant_unit_of_work(tenant) as uow:
                for hook in self.hooks:
                    out = await hook(uow, tenant, req.options)
                    if out:
                        outputs.update(out)
            async with self.db.admin_connection() as conn:
                await conn.execute(q.SET_TENANT_STATUS, tenant_id, TenantStatus.ACTIVE.value)
                await conn.execute(q.NOTIFY_CATALOG, str(tenant_id))
        except BaseException:
            await self._undo(tenant, storage_made)
            raise
        self.catalog.invalidate(tenant_id)
        active = await self.catalog.get(tenant_id)
        assert active is not None
        return ProvisionResult(active, outputs)

    async def _undo(self, tenant: Tenant, storage_made: bool) -> None:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            if storage_made and tenant.isolation is IsolationMode.SCHEMA:
                async with self.db.admin_connection() as conn:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema}" CASCADE')
            if storage_made and tenant.database:
                async with self.db.admin_connection(tenant.server, "postgres", as_owner=False) as c:
                    await drop_tenant_database(c, tenant.database)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            async with self.db.admin_connection() as conn:
                await conn.execute(q.DELETE_TENANT, tenant.id)
                await conn.execute(q.NOTIFY_CATALOG, str(tenant.id))
        self.catalog.invalidate(tenant.id)

    async def set_status(self, slug: str, status: TenantStatus) -> Tenant:
        tenant = await self.catalog.by_slug(slug)
        if tenant is None:
            raise ValidationFailed(f"no tenant with slug {slug!r}")
        async with self.db.admin_connection() as conn:
            await conn.execute(q.SET_TENANT_STATUS, tenant.id, status.value)
            await conn.execute(q.NOTIFY_CATALOG, str(tenant.id))
        self.catalog.invalidate(tenant.id)
        updated = await self.catalog.get(tenant.id)
        assert updated is not None
        return updated
