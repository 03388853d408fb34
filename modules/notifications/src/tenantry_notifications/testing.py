"""The notifications module's isolation seeder (entry point ``tenantry.isolation_seeds``): a
webhook endpoint (through the API) and a log row (written by the module's repository in the
tenant's unit of work, as its handlers do)."""

from __future__ import annotations

import uuid

import httpx

from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import TenantFixture, platform_of
from tenantry_notifications.infrastructure.repository import SqlNotificationRepository


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await client.post(
        "/api/v1/notifications/webhooks",
        headers=tenant.auth,
        # An event nothing publishes in the isolation run: no delivery is attempted.
        json={"url": "http://127.0.0.1:9/hook", "events": ["identity.UserAddedToTenant.v1"]},
    )
    assert r.status_code == 201, r.text
    platform = platform_of(client)
    with tenant_scope(tenant.tenant):
        async with platform.db.unit_of_work() as uow:
            await SqlNotificationRepository().log(
                uow, str(uuid.uuid4()), "email", "x@y.test", "sent"
            )
