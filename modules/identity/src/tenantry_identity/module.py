"""Identity's startup object: wiring only (no I/O, no SQL).

``setup`` builds the application service on identity's units of work (the kernel's
``Database`` factories: the tenant's store, the platform tables seen as the tenant, explicit
platform scope), the SQL repository, the catalog's cache and the member profiles' read path
in the platform cache (``identity:profile``, 300 s); mounts the routes; provides the
``ClientIssuer`` port; registers the onboarding step, its request check and the
principal-status source. ``UserAddedToTenant`` / ``ApiClientCreated`` events and the audit
records of every change are recorded on the change's unit of work and written by the kernel at
its commit (notifications consumes the events).
"""

from __future__ import annotations

from typing import ClassVar

from tenantry.capabilities.cache import Cache
from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry_identity.application.onboarding import OPTIONS as ONBOARDING_OPTIONS
from tenantry_identity.application.onboarding import admin_step
from tenantry_identity.application.services import IdentityService
from tenantry_identity.infrastructure.cache import CachedProfiles
from tenantry_identity.infrastructure.hashing import (
    Argon2PasswordHasher,
    client_secret_matches,
    hash_client_secret,
)
from tenantry_identity.infrastructure.repository import SqlIdentityRepository
from tenantry_identity.infrastructure.tenants import CatalogTenants
from tenantry_identity.infrastructure.units import KernelUnits
from tenantry_identity.routes import ADMIN, IdentityClients, build_router, checked, problems


class IdentityModule(Module):
    name: ClassVar[str] = "identity"
    depends_on: ClassVar[tuple[str, ...]] = ("audit", "cache")
    migrations: ClassVar[str | None] = "tenantry_identity.migrations"
    permissions: ClassVar[dict[str, str]] = {
        ADMIN: "manage the tenant's users, API clients and roles"
    }
    onboarding_options = ONBOARDING_OPTIONS

    def __init__(self) -> None:
        self.service: IdentityService[UnitOfWork] | None = None

    def setup(self, registrar: Registrar) -> None:
        cache = registrar.find(Cache)
        service = IdentityService(
            KernelUnits(registrar.db),
            SqlIdentityRepository(),
            CatalogTenants(registrar.catalog),
            Argon2PasswordHasher(),
            registrar.tokens,
            registrar.expand_actions,
            hash_client_secret,
            client_secret_matches,
            registrar.is_operator_tenant,
            CachedProfiles(cache) if cache is not None else None,
        )
        self.service = service
        registrar.provide(ClientIssuer, IdentityClients(service))
        registrar.include_router(build_router(service, registrar.permissions))
        registrar.add_credential_path("/token")

        registrar.add_onboarding_step(
            admin_step(service, lambda: registrar.default_roles, edge=problems)
        )
        registrar.set_principal_source(service.principal_active)
        registrar.check_provision_request(checked(service.check_onboarding_request))


module = IdentityModule()

__all__ = ["ADMIN", "IdentityModule", "module"]
