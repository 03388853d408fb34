"""Provisioning: create a tenant in any isolation mode, change its status.

Creation is all-or-nothing and runs as the onboarding saga (kernel/tenancy/onboarding): the
catalog row is written as ``provisioning``, storage is made (nothing for ``shared``; a schema,
or a database, migrated to the current version), the steps modules contribute seed the
tenant's data, and only then is the tenant ``active``. A failure at any step undoes the
earlier ones (the modules' compensations, then the schema or database, then the row). The
methods below are the saga's kernel steps.

Status changes (``set_status``: suspend, resume) are audited in the tenant's own log
(``tenant.suspended``, ``tenant.resumed``; ``tenant.created`` is the onboarding's welcome
step), **in the transaction of the change**. The catalog is the owner role's (the app role
may only read it) and the owner cannot write a tenant's audit rows (RLS admits the app role
only), so the change is not made on an owner connection: the app role calls
``tenantry.set_tenant_status`` (an owner function, SECURITY DEFINER: kernel/db/migrations/
platform/0003) in ``PlatformAudit.unit_of_work(tenant)``, the platform unit of work seen as
the tenant that also writes the record at commit. For a shared or schema tenant (its log is
a schema of the main database) that is one transaction: both commit or neither. A
database-mode tenant's log is in its own database, which no transaction of the main database
can join: the kernel writes the record there in a transaction of its own just before the
catalog's COMMIT (kernel/db/commit.tenant_store, ``details.atomic = false``), so a change
never commits without its record (a failed record write fails the change), and the one
window left is a record of a change whose own COMMIT then failed. (An owner connection
committing the change first, as before, had the opposite window: a change without its
record.)
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tenantry.kernel.db import sql as q
from tenantry.kernel.db.bootstrap import create_tenant_database, drop_tenant_database, ensure_roles
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.migrator import Migrator, Store
from tenantry.kernel.db.privileged import admin_connection, owner_connection, tenant_unit_of_work
from tenantry.kernel.db.rls import tenant_tables
from tenantry.kernel.errors import Conflict, ValidationFailed
from tenantry.kernel.tenancy.audit import PlatformAudit, record
from tenantry.kernel.tenancy.catalog import TenantCatalog, tenant_from_row
from tenantry.kernel.tenancy.model import (
    IsolationMode,
    Tenant,
    TenantStatus,
    database_for,
    schema_for,
    validate_slug,
)

#: The audit action of each status an operator sets (``set_status``).
STATUS_ACTIONS = {
    TenantStatus.SUSPENDED: "tenant.suspended",
    TenantStatus.ACTIVE: "tenant.resumed",
}


@dataclass
class ProvisionRequest:
    slug: str
    name: str
    isolation: IsolationMode = IsolationMode.SHARED
    plan: str = "free"
    server: str = "default"
    #: The options modules declare (``Module.onboarding_options``), by name.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProvisionResult:
    tenant: Tenant
    outputs: dict[str, Any]


class Provisioner:
    def __init__(
        self, db: Database, migrator: Migrator, catalog: TenantCatalog, audit: PlatformAudit
    ) -> None:
        self.db = db
        self.audit = audit
        self.migrator = migrator
        self.catalog = catalog
        #: Checks of the request by the modules that own its parts (the options they
        #: declare, the plans capability's plan), run by ``validate`` before anything is
        #: written; each raises ``ValidationFailed`` naming the field.
        self.option_checks: list[Callable[[ProvisionRequest], None]] = []
        #: The onboarding saga the platform attaches (kernel/tenancy/onboarding).
        self.onboarding: Callable[[ProvisionRequest], Awaitable[ProvisionResult]] | None = None

    async def create(self, req: ProvisionRequest) -> ProvisionResult:
        """Create a tenant, all-or-nothing: the onboarding saga (persisted; survives a
        crash), which runs the steps below and the modules' own."""
        if self.onboarding is None:
            raise RuntimeError("no onboarding saga attached (kernel/tenancy/onboarding.attach)")
        return await self.onboarding(req)

    # -- the steps (also the onboarding saga's; each idempotent) -----------------------------
    def validate(self, req: ProvisionRequest) -> IsolationMode:
        try:
            validate_slug(req.slug)
        except ValueError as exc:
            raise ValidationFailed(
                str(exc), errors=[{"field": "slug", "message": str(exc)}]
            ) from None
        if not req.name.strip():
            raise ValidationFailed("name must not be empty", errors=[{"field": "name"}])
        if req.server not in self.db.server_names:  # before anything is written
            known = ", ".join(sorted(self.db.server_names))
            message = f"unknown database server {req.server!r} (configured: {known})"
            raise ValidationFailed(message, errors=[{"field": "server", "message": message}])
        for check in self.option_checks:
            check(req)
        return IsolationMode(req.isolation)

    async def insert_record(self, req: ProvisionRequest, tenant_id: uuid.UUID) -> Tenant:
        """The catalog row, as ``provisioning`` (invisible to requests until activated)."""
        mode = self.validate(req)
        database = database_for(req.slug) if mode is IsolationMode.DATABASE else None
        schema = schema_for(req.slug, mode)
        async with owner_connection(self.db) as conn:
            row = await conn.fetchrow(q.SELECT_TENANT_BY_ID, tenant_id)
            if row is None:
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
        return tenant_from_row(row)

    async def tenant(self, tenant_id: uuid.UUID) -> Tenant | None:
        """The catalog row as it is now (no cache), read through the pool: the app role may
        read the catalog, and a fresh admin connection per read (a new server process each)
        was most of the onboarding saga's time."""
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.SELECT_TENANT_BY_ID, tenant_id)
        return tenant_from_row(row) if row else None

    async def make_storage(self, tenant: Tenant) -> None:
        """Nothing for shared; a migrated schema, or a migrated database."""
        if tenant.isolation is IsolationMode.SCHEMA:
            await self.migrator.migrate_store(Store.for_tenant(tenant))
        elif tenant.isolation is IsolationMode.DATABASE:
            assert tenant.database is not None
            async with admin_connection(self.db, tenant.server, "postgres", as_owner=False) as c:
                await ensure_roles(c, self.db.settings)
                await create_tenant_database(c, tenant.database, self.db.settings)
            await self.migrator.migrate_store(Store.for_tenant(tenant))

    async def activate(self, tenant: Tenant, status: TenantStatus = TenantStatus.ACTIVE) -> None:
        async with owner_connection(self.db) as conn:
            await conn.execute(q.SET_TENANT_STATUS, tenant.id, status.value)
            await conn.execute(q.NOTIFY_CATALOG, str(tenant.id))
        self.catalog.invalidate(tenant.id)

    async def result(self, tenant: Tenant, outputs: dict[str, Any]) -> ProvisionResult:
        self.catalog.invalidate(tenant.id)
        active = await self.catalog.get(tenant.id)
        assert active is not None
        return ProvisionResult(active, outputs)

    async def drop_storage(self, tenant: Tenant) -> None:
        """Undo ``make_storage`` and every row written since: drop the schema or database;
        in the shared schema, delete the tenant's rows from every tenant-owned table (in the
        tenant's own unit of work, so RLS confines the delete to it)."""
        if tenant.isolation is IsolationMode.SCHEMA:
            async with admin_connection(self.db) as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema}" CASCADE')
        elif tenant.database:
            async with admin_connection(self.db, tenant.server, "postgres", as_owner=False) as c:
                await drop_tenant_database(c, tenant.database)
        else:
            await self.purge_rows(tenant)

    async def purge_rows(self, tenant: Tenant) -> None:
        async with admin_connection(self.db, as_owner=False) as conn:
            tables = [t.qualified for t in await tenant_tables(conn, [tenant.schema])]
        remaining = [f'"{t.split(".")[0]}"."{t.split(".")[1]}"' for t in tables]
        for _ in range(len(remaining) + 1):  # foreign keys: retry until children are gone
            if not remaining:
                return
            failed = []
            async with tenant_unit_of_work(self.db, tenant) as uow:
                for table in remaining:
                    try:
                        async with uow.savepoint():
                            await uow.execute(f"DELETE FROM {table}")
                    except asyncpg.ForeignKeyViolationError:
                        failed.append(table)
            remaining = failed
        raise RuntimeError(f"could not purge {remaining} for tenant {tenant.slug}")

    async def delete_record(self, tenant_id: uuid.UUID) -> None:
        async with owner_connection(self.db) as conn:
            await conn.execute(q.DELETE_TENANT, tenant_id)
            await conn.execute(q.NOTIFY_CATALOG, str(tenant_id))
        self.catalog.invalidate(tenant_id)

    async def set_status(self, slug: str, status: TenantStatus) -> Tenant:
        """Suspend or resume a tenant, audited in its log in the same transaction (module
        doc), by whoever is in context (a request's principal; none on the command line). A
        tenant still being provisioned has no log yet: changed unaudited, with a warning."""
        tenant = await self.catalog.by_slug(slug)
        if tenant is None:
            raise ValidationFailed(f"no tenant with slug {slug!r}")
        async with self.audit.unit_of_work(tenant) as uow:
            before = await uow.fetchval(q.SET_STATUS_AUDITED, tenant.id, status.value)
            if before is None:
                raise ValidationFailed(f"no tenant with slug {slug!r}")
            record(
                uow,
                STATUS_ACTIONS.get(status, "tenant.status_set"),
                f"tenant:{tenant.slug}",
                before={"status": before},
                after={"status": status.value},
            )
        self.catalog.invalidate(tenant.id)
        updated = await self.catalog.get(tenant.id)
        assert updated is not None
        return updated
