"""Identity's units of work (``IdentityUnits[UnitOfWork]``) as the kernel offers them: the
tenant's own store, the platform tables seen as the tenant, and explicit platform scope.

Identity works for a tenant named by its caller (the token grant's tenant comes from the
request body; the command line and the onboarding saga run outside a request), but a module
cannot open a unit of work for a tenant it picks (kernel/db/privileged.py is kernel-only). So
each unit of work is the ambient tenant's, with the tenant entered by ``tenant_scope`` for its
duration: one door, with the same tenant filter and RLS settings as a request's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.context import current_principal, tenant_scope
from tenantry.kernel.tenancy.model import Tenant


class KernelUnits:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def tenant(self, tenant: Tenant) -> AsyncIterator[UnitOfWork]:
        # The caller's principal stays (the audit records' actor); None outside a request.
        with tenant_scope(tenant, current_principal()):
            async with self.db.unit_of_work() as uow:
                yield uow

    @contextlib.asynccontextmanager
    async def members(self, tenant: Tenant) -> AsyncIterator[UnitOfWork]:
        with tenant_scope(tenant, current_principal()):
            async with self.db.platform_unit_of_work(as_current_tenant=True) as uow:
                yield uow

    def platform(self) -> contextlib.AbstractAsyncContextManager[UnitOfWork]:
        return self.db.platform_unit_of_work()

    def reaches_platform(self, tenant: Tenant) -> bool:
        # A shared or schema tenant's store is a schema of the main database, where the
        # platform schema (``tenantry``) is too; a database-mode tenant's is another database.
        return tenant.database is None
