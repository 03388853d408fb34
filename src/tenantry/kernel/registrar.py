"""What a module's ``setup`` receives: a ``Registrar``, not the Platform.

The Platform is the composition root (kernel/platform.py): it builds every kernel part
(database, catalog, messaging, jobs, keys and tokens, provisioner, sagas, onboarding,
observability) first, then calls each module's ``setup(registrar)`` in dependency order. The
registrar is narrow and typed: the kernel parts a module wires its services from, and one
method per thing a module may register (routes, credential paths, middleware with a declared
order, message handlers, jobs, maintenance jobs, onboarding steps and request checks, the
authorizer, the principal-status source) plus typed capability handles:
``provide(Port, impl)`` and ``use(Port)`` / ``find(Port)``, by type instead of by string.

Migrations and onboarding options stay declared on the module's class
(``Module.migrations``, ``Module.onboarding_options``): the migrator and the CLI need them
before any setup runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tenantry.kernel.errors import ModuleLoadError

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tenantry.kernel.auth.secrets import PlatformSecrets
    from tenantry.kernel.auth.status import PrincipalStatus, StatusSource
    from tenantry.kernel.auth.tokens import TokenService
    from tenantry.kernel.config import Settings
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.jobs.runner import CancelFn, FailFn, JobFn, JobRunner
    from tenantry.kernel.messaging.dispatcher import Dispatcher, Handler
    from tenantry.kernel.observability.errors import Notifier as ErrorNotifier
    from tenantry.kernel.observability.hub import Job
    from tenantry.kernel.platform import Authorizer, Platform
    from tenantry.kernel.tenancy.catalog import TenantCatalog
    from tenantry.kernel.tenancy.onboarding import OnboardingStep
    from tenantry.kernel.tenancy.provisioning import ProvisionRequest

T = TypeVar("T")

#: Middleware order (lower: outer; the request-context middleware is always outermost and the
#: input guard innermost). The kernel's observability is first of the others, so every answer
#: another middleware gives (a 429, a plan's 403) is counted, logged and traced.
MIDDLEWARE_OBSERVABILITY = 0
#: Refusals before any work: rate limits (``MIDDLEWARE_RATE_LIMIT``), then plan gates.
MIDDLEWARE_RATE_LIMIT = 20
MIDDLEWARE_ENTITLEMENTS = 30
MIDDLEWARE_DEFAULT = 50


@dataclass(frozen=True, slots=True)
class Middleware:
    """A pure ASGI middleware: ``factory(app, **kwargs)``, placed by ``order``."""

    factory: Any
    kwargs: Mapping[str, Any]
    order: int
    owner: str


def in_order(middleware: Sequence[Middleware]) -> list[Middleware]:
    """Outermost first (by ``order``, then registration order)."""
    return sorted(middleware, key=lambda m: m.order)


class Capabilities:
    """Typed handles: one implementation per port (a class or a Protocol), by type."""

    def __init__(self) -> None:
        self._impls: dict[type[Any], Any] = {}
        self._owners: dict[type[Any], str] = {}

    def provide(self, port: type[T], impl: T, owner: str = "kernel") -> None:
        if port in self._impls:
            raise ModuleLoadError(
                f"{owner!r} provides {port.__name__}, which {self._owners[port]!r} provides"
            )
        self._impls[port] = impl
        self._owners[port] = owner

    def find(self, port: type[T]) -> T | None:
        """The implementation of ``port``, or None when no loaded module provides it."""
        return cast("T | None", self._impls.get(port))

    def use(self, port: type[T]) -> T:
        """The implementation of ``port``; ModuleLoadError naming it when none is provided
        (a module using it must depend on the provider, so the provider's setup ran first)."""
        impl = self.find(port)
        if impl is None:
            raise ModuleLoadError(
                f"no loaded module provides {port.__name__} (is its module installed and "
                "enabled, and listed in depends_on?)"
            )
        return impl


@dataclass
class Registrar:
    """One module's view of the platform during ``setup`` (no I/O there)."""

    _platform: Platform = field(repr=False)
    module: str

    # -- kernel parts (all built before any setup) ------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._platform.settings

    @property
    def db(self) -> Database:
        return self._platform.db

    @property
    def catalog(self) -> TenantCatalog:
        return self._platform.catalog

    @property
    def dispatcher(self) -> Dispatcher:
        return self._platform.dispatcher

    @property
    def jobs(self) -> JobRunner:
        return self._platform.jobs

    @property
    def tokens(self) -> TokenService:
        return self._platform.tokens

    @property
    def principals(self) -> PrincipalStatus:
        return self._platform.principals

    @property
    def secrets(self) -> PlatformSecrets:
        return self._platform.secrets

    @property
    def permissions(self) -> Mapping[str, str]:
        """Every declared action (all modules': declared before any setup)."""
        return self._platform.permissions

    @property
    def default_roles(self) -> Mapping[str, list[str]]:
        return self._platform.default_roles

    def expand_actions(self, actions: Sequence[str], tenant_slug: str | None = None) -> list[str]:
        return self._platform.expand_actions(actions, tenant_slug)

    def is_operator_tenant(self, tenant_slug: str | None) -> bool:
        return self._platform.is_operator_tenant(tenant_slug)

    # -- registrations ----------------------------------------------------------------------
    def include_router(self, router: APIRouter) -> None:
        """Serve ``router`` under ``/api/v1/<module>``."""
        self._platform.include_router(router, self.module)

    def add_credential_path(self, path: str) -> None:
        """Mark ``path`` of the module's router (e.g. ``/token``) as a credential endpoint."""
        self._platform.add_credential_path(self.module, path)

    def add_middleware(
        self, factory: Any, *, order: int = MIDDLEWARE_DEFAULT, **kwargs: Any
    ) -> None:
        """A pure ASGI middleware, placed by ``order`` (lower: outer; see the constants). It
        runs inside the request-context middleware (tenant context and request id set) and
        inside observability (what it answers is counted)."""
        self._platform.add_middleware(factory, order=order, owner=self.module, **kwargs)

    def subscribe(self, event_type: type[Any], handler: Handler) -> None:
        """This module consumes ``event_type`` (kernel/messaging: the consumer's name is the
        module's)."""
        self._platform.dispatcher.subscribe(self.module, event_type, handler)

    def handle(self, command_type: type[Any], handler: Handler, *, replies: bool = False) -> None:
        """This module handles ``command_type`` (exactly one handler per command)."""
        self._platform.dispatcher.handle(self.module, command_type, handler, replies=replies)

    def add_job(
        self,
        kind: str,
        run: JobFn,
        *,
        on_failed: FailFn | None = None,
        on_cancelled: CancelFn | None = None,
    ) -> None:
        """Run jobs of ``kind`` (kernel/jobs; enqueue them with ``jobs.enqueue(uow, kind)``)."""
        self._platform.jobs.register(kind, run, on_failed=on_failed, on_cancelled=on_cancelled)

    def add_maintenance(self, name: str, job: Job) -> None:
        """Run ``job`` with the periodic maintenance (e.g. the cache's expired-row sweep)."""
        self._platform.observability.add_maintenance(name, job)

    def add_error_notifier(self, notifier: ErrorNotifier) -> None:
        """Tell ``notifier`` of each new error group (the notifications module's e-mail)."""
        self._platform.observability.errors.add_notifier(notifier)

    def add_onboarding_step(self, step: OnboardingStep) -> None:
        """Add ``step`` to the onboarding saga (kernel/tenancy/onboarding)."""
        self._platform.add_onboarding_step(step)

    def check_provision_request(
        self,
        check: Callable[[ProvisionRequest], None],
        schema: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Validate a tenant-creation request before anything is written (see Platform)."""
        self._platform.check_provision_request(check, schema)

    def set_authorizer(self, authorizer: Authorizer) -> None:
        """Route every ``require()`` permission check through ``authorizer``."""
        self._platform.set_authorizer(authorizer)

    def set_principal_source(self, source: StatusSource) -> None:
        """Where the per-request "is this principal still active?" is read (identity)."""
        self._platform.principals.source = source

    # -- capability handles -----------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return self._platform.capabilities

    def provide(self, port: type[T], impl: T) -> None:
        """Make ``impl`` the implementation of ``port`` for every module and the CLI."""
        self._platform.capabilities.provide(port, impl, self.module)

    def use(self, port: type[T]) -> T:
        return self._platform.capabilities.use(port)

    def find(self, port: type[T]) -> T | None:
        return self._platform.capabilities.find(port)
