"""Where operators' changes are audited: platform scope has no log of its own.

Every audit record belongs to one tenant's hash chain (capabilities/audit). A change made in
platform scope (by an operator, through ``/api/v1/platform``, ``/flags``, ``/entitlements`` or
the command line) is recorded, with ``uow.audit`` in the transaction of the change:

- in the **affected tenant's** log when it concerns one tenant: its plan override, a flag's
  target for it, its lifecycle (created, suspended, resumed);
- in the **operator tenant's** log (``tenancy.operator_tenant``) when it is platform-wide: a
  flag's rules or its deletion, an error group's triage, a signing-key rotation, a cache
  sweep (``platform_wide``; ``platform_scope`` for a change whose statements must run in
  explicit platform scope, across tenants).

Changes to tables the app role may only read (the tenant catalog, the signing keys) are made
through owner functions it may call (``tenantry.set_tenant_status``,
``tenantry.rotate_signing_key``) inside these units of work, never on an owner connection
committing on its own: an owner cannot write a tenant's audit rows (RLS admits the app role).

``unit_of_work(tenant)`` is a platform unit of work (main database, platform tables) seen as
that tenant, so its ``uow.audit`` records go to the tenant's store: in the same transaction
for a shared or schema tenant; for a database-mode tenant in a transaction of their own,
committed first and marked ``details.atomic = false`` (kernel/db/commit.tenant_store). The
actor is the request's principal (an operator of the operator tenant); none on the command
line. A tenant whose store is not ready (still ``provisioning``), or an operator tenant that
does not exist, gets no record: the change is made and a warning logged (``record``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import platform_unit_of_work_as
from tenantry.kernel.db.uow import PLATFORM_SCHEMA, UnitOfWork
from tenantry.kernel.tenancy.catalog import TenantCatalog, is_ready
from tenantry.kernel.tenancy.context import current_tenant
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)


class PlatformAudit:
    """Opens the unit of work of a platform-scope change and records it (module doc)."""

    def __init__(self, db: Database, catalog: TenantCatalog, operator_slug: str) -> None:
        self.db = db
        self.catalog = catalog
        self.operator_slug = operator_slug

    async def operator_tenant(self) -> Tenant | None:
        """The operator tenant: the caller's own in a request of a platform admin (only its
        members hold ``platform:admin``), else read from the catalog by its slug."""
        tenant = current_tenant()
        if tenant is not None and tenant.slug == self.operator_slug:
            return tenant
        return await self.catalog.by_slug(self.operator_slug)

    @contextlib.asynccontextmanager
    async def unit_of_work(self, tenant: Tenant | None) -> AsyncIterator[UnitOfWork]:
        """A platform unit of work whose records go to ``tenant``'s log (None, or a tenant
        still being provisioned: a plain platform unit of work, and ``record`` drops them)."""
        if tenant is not None and not is_ready(tenant):
            tenant = None
        async with platform_unit_of_work_as(self.db, tenant) as uow:
            yield uow

    @contextlib.asynccontextmanager
    async def platform_wide(self) -> AsyncIterator[UnitOfWork]:
        """``unit_of_work`` of the operator tenant: for a platform-wide change (error
        triage, a key rotation)."""
        async with self.unit_of_work(await self.operator_tenant()) as uow:
            yield uow

    @contextlib.asynccontextmanager
    async def platform_scope(self) -> AsyncIterator[tuple[UnitOfWork, UnitOfWork]]:
        """A change in explicit platform scope (statements across tenants: the cache sweep)
        recorded in the operator tenant's log, in one transaction: yields the platform unit
        of work to make the change in and the operator's log (``uow.log_of``) to ``record``
        in. When the block ends, if anything was recorded, the transaction is switched to
        the operator tenant (its settings; RLS admits its log) and the records are written,
        then COMMIT. No ready operator tenant: nothing is recorded (``record`` warns)."""
        operator = await self.operator_tenant()
        if operator is not None and not is_ready(operator):
            operator = None
        if operator is not None:
            await self.db.ensure_tenant_filter()  # the log's INSERT goes through it
        async with self.db.platform_unit_of_work() as uow:
            log = uow.log_of(operator)
            yield uow, log
            if operator is not None and log.collected[1]:
                await uow.execute(UnitOfWork.SET_TENANT, str(operator.id), PLATFORM_SCHEMA)
                await log.write_collected()


def record(
    uow: UnitOfWork,
    action: str,
    resource: str | None = None,
    *,
    before: Any = None,
    after: Any = None,
    details: Any = None,
) -> None:
    """``uow.audit`` for a platform-scope change; without a tenant to record it in (see the
    module doc) the change goes unaudited, with a warning."""
    if uow.tenant is None:
        _log.warning("%s on %s not audited: no tenant log to record it in", action, resource)
        return
    uow.audit(action, resource, before=before, after=after, details=details)
