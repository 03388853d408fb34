"""Identity's units of work (``IdentityUnits[UnitOfWork]``) as the kernel offers them: the
tenant's own store, the platform tables seen as the tenant, and explicit platform scope. No
connection is opened here other than through ``Database``'s unit-of-work factories."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.model import Tenant


class KernelUnits:
    def __init__(self, db: Database) -> None:
        self.db = db

    def tenant(self, tenant: Tenant) -> AbstractAsyncContextManager[UnitOfWork]:
        return self.db.tenant_unit_of_work(tenant)

    def members(self, tenant: Tenant) -> AbstractAsyncContextManager[UnitOfWork]:
        return self.db.platform_unit_of_work(as_tenant=tenant)

    def platform(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return self.db.platform_unit_of_work()

    def reaches_platform(self, tenant: Tenant) -> bool:
        # A shared or schema tenant's store is a schema of the main database, where the
        # platform schema (``tenantry``) is too; a database-mode tenant's is another database.
        return tenant.database is None
