"""The one bootstrap: wires settings, database, modules, tenancy and auth together.

Nothing connects at import time. ``Platform.build`` is pure wiring, and the Platform is the
composition root: every kernel part (database, catalog, messaging, jobs, keys and tokens,
provisioner, sagas, onboarding, observability) is built first, then modules are discovered and
ordered and each one's ``setup`` is called with a ``Registrar`` (kernel/registrar), never the
Platform; ``prepare`` creates roles, runs migrations and the first
signing key (what ``tenantry migrate`` does); ``start`` runs the safety self-check and the
modules' startup, and starts resuming stale sagas (what ``tenantry serve`` and ``tenantry
worker`` do before taking work). Start-up and maintenance visit only the tenants ready for
work (``TenantCatalog.ready``): a tenant whose onboarding crashed never stops a start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tenantry.kernel.auth.actions import PLATFORM_ADMIN, without_platform_actions
from tenantry.kernel.auth.keys import Keyring
from tenantry.kernel.auth.secrets import PlatformSecrets
from tenantry.kernel.auth.status import PrincipalStatus
from tenantry.kernel.auth.tokens import TokenService
from tenantry.kernel.config import Settings
from tenantry.kernel.db.bootstrap import ensure_database, ensure_roles
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.embedded import start_embedded
from tenantry.kernel.db.migrator import (
    Migration,
    MigrationReport,
    Migrator,
    Progress,
    load_migrations,
)
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.rls import raise_if_unsafe, self_check
from tenantry.kernel.jobs.runner import JobRunner
from tenantry.kernel.messaging.runtime import MIGRATIONS as MESSAGING_MIGRATIONS
from tenantry.kernel.messaging.runtime import Messaging
from tenantry.kernel.messaging.saga import SagaRunner
from tenantry.kernel.modules import Module, discover, order
from tenantry.kernel.observability.api import build_router as build_observability_router
from tenantry.kernel.observability.hub import OBSERVABILITY_MIGRATIONS, Observability
from tenantry.kernel.observability.middleware import ObservabilityMiddleware
from tenantry.kernel.registrar import (
    MIDDLEWARE_DEFAULT,
    MIDDLEWARE_OBSERVABILITY,
    Capabilities,
    Middleware,
    Registrar,
)
from tenantry.kernel.tenancy.audit import PlatformAudit
from tenantry.kernel.tenancy.catalog import STORE_MISSING, TenantCatalog
from tenantry.kernel.tenancy.onboarding import OnboardingStep
from tenantry.kernel.tenancy.onboarding import attach as attach_onboarding
from tenantry.kernel.tenancy.provisioning import Provisioner, ProvisionRequest
from tenantry.kernel.tenancy.routes import build_router as build_platform_router

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tenantry.kernel.tenancy.context import Principal


class Authorizer(Protocol):
    """Decides whether ``principal`` may do ``action`` (on ``resource``); deny by default.
    Returns (allowed, reason) where reason names the deciding policy or the refusal."""

    async def authorize(
        self, principal: Principal, action: str, resource: Any = None
    ) -> tuple[bool, str]: ...


_log = logging.getLogger(__name__)
T = TypeVar("T")
KERNEL_MIGRATIONS = "tenantry.kernel.db.migrations"
JOBS_MIGRATIONS = "tenantry.kernel.jobs.migrations"
#: The kernel's own migration sources, in the order they run: (the name every store records
#: in ``schema_migrations.module``, the package holding ``platform/`` and ``tenant/``). An
#: applied migration is known by (name, version), never by its package, so a package may move
#: (``kernel/db/sql`` became ``kernel/db/migrations``) but a name never changes.
KERNEL_SOURCES: tuple[tuple[str, str], ...] = (
    ("kernel", KERNEL_MIGRATIONS),
    ("observability", OBSERVABILITY_MIGRATIONS),
    ("messaging", MESSAGING_MIGRATIONS),
    ("jobs", JOBS_MIGRATIONS),
)


class Platform:
    def __init__(self, settings: Settings, modules: Sequence[Module], admin_url: str) -> None:
        self.settings = settings
        self.modules = order(modules)
        self.db = Database(settings.database, admin_url)
        migrations: list[Migration] = []
        for source, package in KERNEL_SOURCES:
            migrations += load_migrations(source, package)
        for m in self.modules:
            migrations += load_migrations(m.name, m.migrations)
        self.migrator = Migrator(
            self.db,
            migrations,
            [*(source for source, _ in KERNEL_SOURCES), *(m.name for m in self.modules)],
        )
        self.catalog = TenantCatalog(self.db, settings.tenancy.catalog_ttl_s)
        #: Opens the unit of work of a platform-scope change and says whose log records it
        #: (kernel/tenancy/audit): status changes, key rotations, error triage, cache sweeps.
        self.platform_audit = PlatformAudit(self.db, self.catalog, settings.tenancy.operator_tenant)
        #: Dispatcher (send/publish), outbox relay, broker: see kernel/messaging.
        self.messaging = Messaging(self.db, self.catalog, settings.messaging)
        self.dispatcher = self.messaging.dispatcher
        #: Background jobs and schedules; modules register handlers in ``setup``.
        self.jobs = JobRunner(self.db, self.catalog, settings.jobs)
        grace = settings.auth.access_token_ttl_s + settings.auth.leeway_s
        self.keyring = Keyring(self.db, grace, self.platform_audit)
        self.tokens = TokenService(self.keyring, settings.auth)
        #: Per-request "is the token's principal still active?" (the identity module sets
        #: its ``source``); see kernel/auth/status.
        self.principals = PrincipalStatus(self.db, settings.auth.principal_status_ttl_s)
        #: The platform secret and keys derived from it (``await secrets.derive(purpose)``).
        secret = settings.security.secret_key
        self.secrets = PlatformSecrets(self.db, secret.get_secret_value() if secret else None)
        self.routers: list[tuple[APIRouter, str]] = []
        #: Checks of tenant-creation options, by the modules that own them.
        self.provision_checks: list[Callable[[ProvisionRequest], None]] = []
        #: JSON Schemas of the fields those checks decide (see check_provision_request).
        self.provision_schemas: dict[str, dict[str, Any]] = {}
        self.permissions: dict[str, str] = {PLATFORM_ADMIN: "operate the whole platform"}
        self.default_roles: dict[str, list[str]] = {}
        #: Typed capability handles (``use(Port)``, ``find(Port)``): what modules provide.
        self.capabilities = Capabilities()
        #: Extra ASGI middleware, placed by their declared order (see add_middleware).
        self.middleware: list[Middleware] = []
        #: Unauthenticated credential endpoints (the token endpoint): a value the input guard
        #: refuses there is a 401 ``invalid_request``, not a 422 naming the field.
        self.credential_paths: set[str] = set()
        #: The permission decider ``require()`` delegates to (set by the authz capability);
        #: None: the token's scopes decide.
        self.authorizer: Authorizer | None = None
        #: Called (never raising) with (request, exc) for every unhandled HTTP exception.
        self.unhandled_hooks: list[Any] = []
        #: Logs, metrics, traces, error tracking, SLOs (kernel/observability): given the
        #: parts it reads, never the platform; its hooks are wired here.
        self.observability = Observability(
            settings.observability, settings.environment, self.db, self.platform_audit
        )
        self.add_middleware(
            ObservabilityMiddleware,
            order=MIDDLEWARE_OBSERVABILITY,
            owner="observability",
            hub=self.observability,
        )
        self.include_router(
            build_observability_router(self.observability, settings.slo), "platform"
        )
        self.unhandled_hooks.append(self.observability.on_unhandled)
        self.dispatcher.error_hooks.append(self.observability.consumer_error)
        self.jobs.error_hooks.append(self.observability.background_job_error)
        #: Tenant creation: the provisioner's steps, run as the onboarding saga, to which
        #: modules contribute options (declared on their class) and steps (in setup).
        self.provisioner = Provisioner(self.db, self.migrator, self.catalog, self.platform_audit)
        self.provisioner.option_checks = self.provision_checks
        self.sagas = SagaRunner(self.db, self.messaging.settings.saga_stale_s)
        self.onboarding = attach_onboarding(self.provisioner, self.dispatcher, self.sagas)
        # Every kernel part exists from here on. What modules declare on their class first
        # (typed settings: a ConfigError naming the key before any wiring; permissions and
        # default roles: complete before any setup reads them; onboarding options), then
        # each module's setup, in dependency order, through its registrar.
        for m in self.modules:
            for section, model in type(m).declared_settings().items():
                settings.section(section, model)
        for m in self.modules:
            for action in m.permissions:
                if action in self.permissions:
                    raise ValueError(f"permission {action!r} declared twice")
            self.permissions.update(m.permissions)
            for role, actions in m.default_roles.items():
                self.default_roles.setdefault(role, []).extend(actions)
            for option in m.onboarding_options:
                self.onboarding.add_option(option)
                self.provision_schemas[option.name] = {
                    "type": ["string", "null"],
                    "maxLength": option.max_length,
                    "description": option.help,
                    **option.schema,
                }
        for m in self.modules:
            m.setup(Registrar(self, m.name))
        self.messaging.configure_routes(settings.dispatch, [m.name for m in self.modules])
        self.onboarding.seal()
        self.include_router(build_platform_router(self), "platform")
        self._started = False
        self._resumer: asyncio.Task[None] | None = None

    # -- wiring helpers for modules ---------------------------------------------------------
    def include_router(self, router: APIRouter, module: str) -> None:
        self.routers.append((router, f"/api/v1/{module}"))

    def add_credential_path(self, module: str, path: str) -> None:
        """Mark ``path`` of ``module``'s router (e.g. ``/token``) as a credential endpoint."""
        self.credential_paths.add(f"/api/v1/{module}{path}")

    def add_onboarding_step(self, step: OnboardingStep) -> None:
        """Add ``step`` (action + compensation) to the onboarding saga, between the storage
        and the activation (kernel/tenancy/onboarding)."""
        self.onboarding.add_step(step)

    def check_provision_request(
        self,
        check: Callable[[ProvisionRequest], None],
        schema: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Validate a tenant-creation request before anything is written (raise
        ``ValidationFailed`` naming the field or option); ``schema``: the JSON Schema of the
        fields or options the check decides (``POST /platform/tenants`` documents them)."""
        self.provision_checks.append(check)
        self.provision_schemas.update(schema or {})

    def set_authorizer(self, authorizer: Authorizer) -> None:
        """Route every ``require()`` permission check through ``authorizer``."""
        self.authorizer = authorizer

    def add_middleware(
        self, factory: Any, *, order: int = MIDDLEWARE_DEFAULT, owner: str = "", **kwargs: Any
    ) -> None:
        """Add a pure ASGI middleware, placed by ``order`` (lower: outer; kernel/registrar):
        inside the request-context middleware (tenant context and request id set)."""
        self.middleware.append(Middleware(factory, kwargs, order, owner))

    # -- capability handles (the CLI, startup and request-time code) ------------------------
    def use(self, port: type[T]) -> T:
        """The implementation a module provided for ``port`` (ModuleLoadError if none)."""
        return self.capabilities.use(port)

    def find(self, port: type[T]) -> T | None:
        """The implementation a module provided for ``port``, or None."""
        return self.capabilities.find(port)

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def build(cls, settings: Settings, modules: Sequence[Module] | None = None) -> Platform:
        """Resolve the database (embedded when no URL is set) and wire everything."""
        url = settings.database.url
        if url is None:
            url = start_embedded(settings.database.embedded_dir)
        mods = list(modules) if modules is not None else discover(settings.modules.disabled)
        return cls(settings, mods, url)

    async def prepare(self, progress: Progress | None = None) -> MigrationReport:
        """Database, roles, migrations on every store, first signing key. Idempotent."""
        await ensure_database(self.db.admin_url)
        async with admin_connection(self.db, as_owner=False) as conn:
            await ensure_roles(conn, self.settings.database)
        tenants = []
        try:
            # Tenants still being provisioned are skipped: their onboarding saga migrates
            # their store (or drops it, compensating); a crashed one has no store yet.
            tenants = await self.catalog.ready()
        except Exception:
            _log.debug("catalog not readable yet; migrating platform and shared stores first")
        report = await self.migrator.migrate_all(tenants, progress)
        if report.ok:
            await self.keyring.ensure_key(self.settings.auth.algorithm)
            await self.secrets.ensure()
        return report

    async def check(self) -> list[str]:
        """The start-up self-check over the main database and the database of every tenant
        ready for work (``catalog.ready``: one still being provisioned may have none yet; a
        ready tenant whose database is missing is skipped with a warning, it serves nothing)."""
        s = self.settings.database
        async with admin_connection(self.db, as_owner=False) as conn:
            problems = await self_check(conn, s.app_user, s.owner_role)
        for tenant in await self.catalog.ready():
            if tenant.database:
                try:
                    async with admin_connection(
                        self.db, tenant.server, tenant.database, as_owner=False
                    ) as conn:
                        problems += await self_check(
                            conn, s.app_user, s.owner_role, where=f"database {tenant.database}"
                        )
                except STORE_MISSING as exc:
                    _log.warning(
                        "self-check: tenant %s has no database %s (%s): skipped",
                        tenant.slug,
                        tenant.database,
                        exc,
                    )
        return problems

    async def start(self, *, listen: bool = True) -> None:
        if self._started:
            return
        await self.observability.start()  # first: tracing hooks before pools open
        raise_if_unsafe(await self.check())
        await self.keyring.load()
        if listen:
            await self.catalog.listen()
            await self.principals.listen()
            await self.keyring.listen()
        for m in self.modules:
            await m.startup(self)
        if self.messaging.settings.relay_in_process:
            await self.messaging.start_relay()
        if self.messaging.settings.saga_resume:
            # Onboardings (and other sagas) of a crashed process: carried on or compensated
            # in the background, at once and then every saga_stale_s / 2 (kernel/messaging/
            # saga). Claimed with SKIP LOCKED: serve and worker processes may all run this.
            self._resumer = asyncio.get_running_loop().create_task(self.sagas.keep_resuming())
        self._started = True

    async def close(self) -> None:
        if self._resumer is not None:
            self._resumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resumer
            self._resumer = None
        await self.messaging.close()
        await self.observability.close()
        for m in reversed(self.modules):
            await m.shutdown(self)
        await self.catalog.close()
        await self.principals.close()
        await self.keyring.close()
        await self.db.close()
        self._started = False

    def is_operator_tenant(self, tenant_slug: str | None) -> bool:
        """The one tenant whose roles may grant platform actions (kernel/auth/actions.py)."""
        return tenant_slug is not None and tenant_slug == self.settings.tenancy.operator_tenant

    def expand_actions(self, actions: Sequence[str], tenant_slug: str | None = None) -> list[str]:
        """Role actions to token scopes: ``*`` is every declared action; unknown ones drop;
        platform actions (``platform:*``) only for the operator tenant."""
        out: set[str] = set()
        for a in actions:
            if a == "*":
                out.update(self.permissions)
            elif a.endswith(":*"):
                prefix = a[:-1]
                out.update(p for p in self.permissions if p.startswith(prefix))
            elif a in self.permissions:
                out.add(a)
        if not self.is_operator_tenant(tenant_slug):
            out = without_platform_actions(out)
        return sorted(out)
