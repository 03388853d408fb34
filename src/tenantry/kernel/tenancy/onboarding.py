"""The tenant onboarding saga, built on the provisioner's steps and the modules' own:

record (catalog row, ``provisioning``) → storage (schema / database / nothing) → the steps
modules contribute (``OnboardingStep``, in ``order``, then registration order; with the
reference modules: the ledger's ``chart_of_accounts``, then identity's ``admin``: roles and
the first admin login) → activate → welcome (``TenantOnboarded`` in the tenant's outbox). A
failure at any step compensates the earlier ones in reverse: each contributed step's own
compensation, then the storage (drops the schema or database; shared tenants: deletes the
tenant's rows), then the record (deletes the catalog row), so no schema and no active catalog
row remain.

The kernel knows steps and options contributed by modules, not what they seed. A module
declares the options of tenant creation it reads (``Module.onboarding_options``: the
``POST /platform/tenants`` body and ``tenantry tenants create`` grow one field or flag per
option) and registers its steps in ``setup``. A step receives an ``OnboardingRun``: the new
tenant, the options, a unit of work in the tenant's store, ``remember`` for what its
compensation (or a resumed run) needs, and returns what the caller is shown.

After a crash (kill -9, power loss) the saga's row is left ``running`` or ``compensating``;
every ``serve`` and ``worker`` process resumes it once its heartbeat is ``saga_stale_s`` old
(kernel/messaging/saga). Until then the tenant stays ``provisioning``, which start-up checks
and maintenance loops skip (``TenantCatalog.ready``).

The welcome step also writes the tenant's first audit record, ``tenant.created`` (its slug,
name, isolation, plan and server; the options only by name), in the transaction of the
welcome event. Its actor is whoever asked for the tenant (the request's principal, kept in the
saga's data as ``actor`` so a resumed saga records it too; none on the command line).

Secret options (``OnboardingOption(secret=True)``: an admin password) live only in memory
(keys starting with ``_`` are not persisted). A resumed saga has none (``run.resumed``): a step
that needs one fails, and the saga compensates instead of creating a tenant nobody can log in
to; steps after it carry on.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.dispatcher import Dispatcher
from tenantry.kernel.messaging.saga import (
    SagaData,
    SagaDefinition,
    SagaFailed,
    SagaRunner,
    Step,
)
from tenantry.kernel.tenancy.context import Principal, current_principal, tenant_scope
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus
from tenantry.kernel.tenancy.provisioning import Provisioner, ProvisionRequest, ProvisionResult

KIND = "tenant-onboarding"
#: Saga data: the non-secret options (persisted) and the secret ones (memory only).
OPTIONS_KEY = "options"
SECRETS_KEY = "_secrets"
OUTPUTS_KEY = "_outputs"
#: The kernel's own steps (a contributed step may not take these names).
KERNEL_STEPS = ("record", "storage", "activate", "welcome")


@dataclass(frozen=True, slots=True)
class OnboardingOption:
    """An option of tenant creation a module reads: a field of the ``POST /platform/tenants``
    body and a ``--<name>`` flag of ``tenantry tenants create`` (a string; its ``check`` or
    the module's request check decides what else is valid, before anything is written)."""

    name: str
    help: str
    #: The field's JSON Schema in the OpenAPI document (what the module's check accepts).
    schema: Mapping[str, Any] = field(default_factory=dict)
    max_length: int = 1024
    #: Never persisted (the saga keeps it in memory; a resumed saga does not have it).
    secret: bool = False


@dataclass(slots=True)
class OnboardingRun:
    """What a contributed step (and its compensation) sees of the onboarding."""

    tenant_id: uuid.UUID
    #: The request's options (secret ones only in the process that took the request).
    options: Mapping[str, Any]
    #: The saga's persisted data: what ``prepare`` drew and earlier steps remembered.
    data: Mapping[str, Any]
    #: Resumed after a crash, in this or another process: secret options are gone.
    resumed: bool
    _load: Callable[[uuid.UUID], Awaitable[Tenant | None]]
    _unit_of_work: Callable[[Tenant], contextlib.AbstractAsyncContextManager[UnitOfWork]]
    remembered: dict[str, Any] = field(default_factory=dict)
    _tenant: Tenant | None = None

    async def tenant(self) -> Tenant | None:
        """The catalog row as it is now (None: already removed, in a compensation)."""
        if self._tenant is None:
            self._tenant = await self._load(self.tenant_id)
        return self._tenant

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work in the new tenant's store (its RLS scope, its schema or database)."""
        tenant = await self.tenant()
        if tenant is None:
            raise RuntimeError(f"tenant {self.tenant_id} vanished during onboarding")
        async with self._unit_of_work(tenant) as uow:
            yield uow

    def remember(self, **values: Any) -> None:
        """Persist ``values`` in the saga's data (JSON): read back by the compensation, by a
        resumed run and by later steps (``data``). Never a secret."""
        self.remembered.update(values)


StepAction = Callable[[OnboardingRun], Awaitable[Mapping[str, Any] | None]]
StepCompensation = Callable[[OnboardingRun], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OnboardingStep:
    """A module's step of the onboarding saga. ``action`` returns what the caller is shown
    (``ProvisionResult.outputs``; the HTTP answer and the CLI's text show the outputs named
    like an option: the value used for it, a generated password...). Both must be
    idempotent; ``compensation`` must tolerate an action that ran partly or not at all and
    runs while the catalog row and the store still exist (they are undone after it)."""

    name: str
    action: StepAction
    compensation: StepCompensation | None = None
    timeout_s: float = 60.0
    #: Steps run by ``order``, then in registration order (module dependency order).
    order: int = 50
    #: Called with the options before the saga starts; what it returns is persisted with the
    #: saga's first record (e.g. an id the compensation recognises, even after a crash).
    prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None


class Onboarding:
    def __init__(self, provisioner: Provisioner, dispatcher: Dispatcher, runner: SagaRunner):
        self.p = provisioner
        self.dispatcher = dispatcher
        self.runner = runner
        self.steps: list[OnboardingStep] = []
        self.options: dict[str, OnboardingOption] = {}
        self._sealed = False

    # -- what modules contribute (before ``seal``) ------------------------------------------
    def add_option(self, option: OnboardingOption) -> None:
        if option.name in self.options:
            raise ValueError(f"onboarding option {option.name!r} declared twice")
        self.options[option.name] = option

    def add_step(self, step: OnboardingStep) -> None:
        if self._sealed:
            raise RuntimeError("onboarding steps are added in setup, before the platform starts")
        taken = {*KERNEL_STEPS, *(s.name for s in self.steps)}
        if step.name in taken:
            raise ValueError(f"onboarding step {step.name!r} is taken")
        self.steps.append(step)

    def seal(self) -> None:
        """Define the saga (its steps are fixed from here on: a resumed saga's step index
        must mean the same step)."""
        contributed = sorted(self.steps, key=lambda s: s.order)  # stable: registration order
        self.runner.define(
            SagaDefinition(
                KIND,
                [
                    Step("record", self._record, self._unrecord, timeout_s=30),
                    Step("storage", self._storage, self._unstorage, timeout_s=300),
                    *(self._saga_step(s) for s in contributed),
                    Step("activate", self._activate, self._deactivate, timeout_s=30),
                    Step("welcome", self._welcome, None, timeout_s=30),
                ],
            )
        )
        self._sealed = True

    # -- running ----------------------------------------------------------------------------
    async def __call__(self, req: ProvisionRequest) -> ProvisionResult:
        mode = self.p.validate(req)
        secret = {k for k, o in self.options.items() if o.secret}
        caller = current_principal()
        data: SagaData = {
            "tenant_id": str(uuid.uuid4()),
            "slug": req.slug,
            "name": req.name,
            "isolation": mode.value,
            "plan": req.plan,
            "server": req.server,
            OPTIONS_KEY: {k: v for k, v in req.options.items() if k not in secret},
            SECRETS_KEY: {k: v for k, v in req.options.items() if k in secret},
            "actor": _actor(caller),
        }
        for step in self.steps:
            if step.prepare is not None:
                data.update(step.prepare(dict(req.options)))
        try:
            out = await self.runner.start(KIND, data)
        except SagaFailed as exc:
            # Compensated; the caller sees the step's own error (a 409 for a taken slug...).
            if isinstance(exc.__cause__, Exception):
                raise exc.__cause__ from exc
            raise
        tenant = await self._tenant(out)
        return await self.p.result(tenant, dict(out.get(OUTPUTS_KEY) or {}))

    def _run(self, data: SagaData) -> OnboardingRun:
        resumed = SECRETS_KEY not in data
        options = {**(data.get(OPTIONS_KEY) or {}), **(data.get(SECRETS_KEY) or {})}
        return OnboardingRun(
            uuid.UUID(data["tenant_id"]),
            options,
            {k: v for k, v in data.items() if not k.startswith("_")},
            resumed,
            self.p.tenant,
            functools.partial(tenant_unit_of_work, self.p.db),
        )

    def _saga_step(self, step: OnboardingStep) -> Step:
        async def action(data: SagaData) -> SagaData | None:
            run = self._run(data)
            outputs = await step.action(run)
            return {
                **run.remembered,
                OUTPUTS_KEY: {**(data.get(OUTPUTS_KEY) or {}), **(outputs or {})},
            }

        async def compensation(data: SagaData) -> None:
            assert step.compensation is not None
            await step.compensation(self._run(data))

        return Step(
            step.name,
            action,
            compensation if step.compensation is not None else None,
            timeout_s=step.timeout_s,
        )

    async def _tenant(self, data: SagaData) -> Tenant:
        tenant = await self.p.tenant(uuid.UUID(data["tenant_id"]))
        if tenant is None:
            raise RuntimeError(f"tenant {data['slug']} vanished during onboarding")
        return tenant

    def _request(self, data: SagaData) -> ProvisionRequest:
        return ProvisionRequest(
            data["slug"],
            data["name"],
            IsolationMode(data["isolation"]),
            data["plan"],
            data["server"],
            {**(data.get(OPTIONS_KEY) or {}), **(data.get(SECRETS_KEY) or {})},
        )

    # -- the kernel's steps -----------------------------------------------------------------
    async def _record(self, data: SagaData) -> SagaData | None:
        await self.p.insert_record(self._request(data), uuid.UUID(data["tenant_id"]))
        return None

    async def _unrecord(self, data: SagaData) -> None:
        await self.p.delete_record(uuid.UUID(data["tenant_id"]))

    async def _storage(self, data: SagaData) -> SagaData | None:
        await self.p.make_storage(await self._tenant(data))
        return None

    async def _unstorage(self, data: SagaData) -> None:
        tenant = await self.p.tenant(uuid.UUID(data["tenant_id"]))
        if tenant is not None:
            await self.p.drop_storage(tenant)

    async def _activate(self, data: SagaData) -> SagaData | None:
        await self.p.activate(await self._tenant(data))
        return None

    async def _deactivate(self, data: SagaData) -> None:
        tenant = await self.p.tenant(uuid.UUID(data["tenant_id"]))
        if tenant is not None:
            await self.p.activate(tenant, TenantStatus.PROVISIONING)

    async def _welcome(self, data: SagaData) -> SagaData | None:
        tenant = await self._tenant(data)
        with tenant_scope(tenant, _principal(data.get("actor"))):
            async with self.p.db.unit_of_work() as uow:
                uow.audit(
                    "tenant.created",
                    f"tenant:{tenant.slug}",
                    after={
                        "slug": tenant.slug,
                        "name": tenant.name,
                        "isolation": tenant.isolation.value,
                        "plan": tenant.plan,
                        "server": tenant.server,
                    },
                    details={"options": sorted({**(data.get(OPTIONS_KEY) or {})})},
                )
                await self.dispatcher.publish(
                    uow,
                    TenantOnboarded(
                        tenant_id=tenant.id,
                        slug=tenant.slug,
                        name=tenant.name,
                        isolation=tenant.isolation.value,
                        # The event's v1 field: what the step that made the first admin
                        # remembered under this name (identity's), if any.
                        admin_email=data.get("admin_email"),
                    ),
                )
        return None


def _actor(p: Principal | None) -> dict[str, str] | None:
    """Who asked for the tenant, as the saga's data keeps it (JSON)."""
    if p is None:
        return None
    return {"subject": p.subject, "kind": p.kind, "tenant_id": str(p.tenant_id)}


def _principal(actor: Mapping[str, str] | None) -> Principal | None:
    """The principal the ``tenant.created`` record names (no scopes or roles: it is never
    asked for a permission)."""
    if not actor:
        return None
    return Principal(actor["subject"], uuid.UUID(actor["tenant_id"]), actor.get("kind", "user"))


def shown_outputs(outputs: Mapping[str, Any], options: Sequence[str]) -> dict[str, Any]:
    """The outputs the caller is shown (HTTP answer, CLI text): those named like an option."""
    return {k: v for k, v in outputs.items() if k in options}


def attach(provisioner: Provisioner, dispatcher: Dispatcher, runner: SagaRunner) -> Onboarding:
    onboarding = Onboarding(provisioner, dispatcher, runner)
    provisioner.onboarding = onboarding
    return onboarding
