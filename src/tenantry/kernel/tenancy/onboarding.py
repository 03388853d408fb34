"""The tenant onboarding saga, built on the provisioner's steps:

record (catalog row, ``provisioning``) → storage (schema / database / nothing) → chart of
accounts (``platform.SeedChartOfAccounts.v1`` in the new tenant's context, answered by the
ledger; compensated by ``platform.RemoveChartOfAccounts.v1``; skipped only when no loaded
module handles it; the ``chart_of_accounts`` option picks the template, ``none`` for an empty
ledger) → admin (the
provisioning hooks: roles, the admin user) → activate → welcome (``TenantOnboarded`` in the
tenant's outbox). A failure at any step compensates the earlier ones in reverse: the admin
compensation runs the hooks' undo (the identity module deletes the admin login this attempt
created, recognised by the id drawn at the start, ``NEW_ADMIN_USER_ID``, so trying again with
the same e-mail sets the new password; a login that existed before stays), the storage
compensation drops the schema or database (shared tenants: deletes the tenant's rows), the
record compensation deletes the catalog row, so no schema and no active catalog row remain.

After a crash (kill -9, power loss) the saga's row is left ``running`` or ``compensating``;
every ``serve`` and ``worker`` process resumes it once its heartbeat is ``saga_stale_s`` old
(kernel/messaging/saga). Until then the tenant stays ``provisioning``, which start-up checks
and maintenance loops skip (``TenantCatalog.ready``).

Secrets (an admin password given or generated) live only in memory (keys starting with
``_`` are not persisted). A saga resumed after a crash that still has to create the admin
cannot know the password, so it fails and compensates instead of creating a tenant nobody
can log in to; otherwise it carries on.
"""

from __future__ import annotations

import uuid
from typing import Any

from tenantry.kernel.messaging.dispatcher import Dispatcher
from tenantry.kernel.messaging.saga import (
    SagaData,
    SagaDefinition,
    SagaFailed,
    SagaRunner,
    Step,
    persisted,
)
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.contracts import (
    RemoveChartOfAccounts,
    SeedChartOfAccounts,
    TenantOnboarded,
)
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus
from tenantry.kernel.tenancy.provisioning import (
    NEW_ADMIN_USER_ID,
    Provisioner,
    ProvisionRequest,
    ProvisionResult,
)

KIND = "tenant-onboarding"


class MissingSecret(RuntimeError):
    """The saga was resumed in another process: the admin password is gone."""


class Onboarding:
    def __init__(self, provisioner: Provisioner, dispatcher: Dispatcher, runner: SagaRunner):
        self.p = provisioner
        self.dispatcher = dispatcher
        self.runner = runner
        runner.define(
            SagaDefinition(
                KIND,
                [
                    Step("record", self._record, self._unrecord, timeout_s=30),
                    Step("storage", self._storage, self._unstorage, timeout_s=300),
                    Step("chart_of_accounts", self._chart, self._unchart, timeout_s=60),
                    Step("admin", self._admin, self._unadmin, timeout_s=60),
                    Step("activate", self._activate, self._deactivate, timeout_s=30),
                    Step("welcome", self._welcome, None, timeout_s=30),
                ],
            )
        )

    async def __call__(self, req: ProvisionRequest) -> ProvisionResult:
        mode = self.p.validate(req)
        data: SagaData = {
            "tenant_id": str(uuid.uuid4()),
            "slug": req.slug,
            "name": req.name,
            "isolation": mode.value,
            "plan": req.plan,
            "server": req.server,
            "admin_email": req.options.get("admin_email"),
            "chart_template": str(req.options.get("chart_of_accounts") or "default"),
            "_options": dict(req.options),
        }
        if req.options.get("admin_email"):
            # Persisted before any step: the admin step's compensation removes the login
            # with this id, which only this attempt can have created (even after a crash).
            data[NEW_ADMIN_USER_ID] = str(uuid.uuid4())
        try:
            out = await self.runner.start(KIND, data)
        except SagaFailed as exc:
            # Compensated; the caller sees the step's own error (a 409 for a taken slug...).
            if isinstance(exc.__cause__, Exception):
                raise exc.__cause__ from exc
            raise
        tenant = await self._tenant(out)
        return await self.p.result(tenant, dict(out.get("_outputs") or {}))

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
            dict(data.get("_options") or {}),
        )

    # -- steps ------------------------------------------------------------------------------
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

    async def _chart(self, data: SagaData) -> SagaData | None:
        if not self.dispatcher.has_handler(SeedChartOfAccounts):
            return {"chart_of_accounts": "skipped: no module handles it"}
        template = str(data.get("chart_template") or "default")
        with tenant_scope(await self._tenant(data)):
            reply = await self.dispatcher.send(SeedChartOfAccounts(template=template))
        created = reply.get("created") if isinstance(reply, dict) else None
        return {"chart_of_accounts": "seeded", "chart_created": created}

    async def _unchart(self, data: SagaData) -> None:
        if not self.dispatcher.has_handler(RemoveChartOfAccounts):
            return
        tenant = await self.p.tenant(uuid.UUID(data["tenant_id"]))
        if tenant is None:
            return
        template = str(data.get("chart_template") or "default")
        with tenant_scope(tenant):
            await self.dispatcher.send(RemoveChartOfAccounts(template=template))

    async def _admin(self, data: SagaData) -> SagaData | None:
        if "_options" not in data and data.get("admin_email"):
            raise MissingSecret("resumed after a crash: the admin password is not persisted")
        options = dict(data.get("_options") or {})
        if data.get(NEW_ADMIN_USER_ID):
            options[NEW_ADMIN_USER_ID] = data[NEW_ADMIN_USER_ID]
        outputs = await self.p.run_hooks(await self._tenant(data), options)
        return {"_outputs": outputs, "admin_user_id": outputs.get("admin_user_id")}

    async def _unadmin(self, data: SagaData) -> None:
        # The hooks' own compensations (the admin login this attempt created); roles and
        # the membership go with the store and the catalog row, undone after this.
        await self.p.undo_hooks_for(uuid.UUID(data["tenant_id"]), persisted(data))

    async def _activate(self, data: SagaData) -> SagaData | None:
        await self.p.activate(await self._tenant(data))
        return None

    async def _deactivate(self, data: SagaData) -> None:
        tenant = await self.p.tenant(uuid.UUID(data["tenant_id"]))
        if tenant is not None:
            await self.p.activate(tenant, TenantStatus.PROVISIONING)

    async def _welcome(self, data: SagaData) -> SagaData | None:
        tenant = await self._tenant(data)
        with tenant_scope(tenant):
            async with self.p.db.unit_of_work() as uow:
                await self.dispatcher.publish(
                    uow,
                    TenantOnboarded(
                        tenant_id=tenant.id,
                        slug=tenant.slug,
                        name=tenant.name,
                        isolation=tenant.isolation.value,
                        admin_email=data.get("admin_email"),
                    ),
                )
        return None


def attach(provisioner: Provisioner, dispatcher: Dispatcher, runner: SagaRunner) -> Any:
    onboarding = Onboarding(provisioner, dispatcher, runner)
    provisioner.onboarding = onboarding
    return onboarding
