"""Messaging rows (outbox, dead letters, inbox) of the tenant store.

Messaging has no HTTP API of its own, so this seeder writes through the platform's
dispatcher and the tenant's own unit of work (RLS on), as a publishing handler would."""

from __future__ import annotations

import uuid
from typing import ClassVar

import httpx
from pydantic import BaseModel

from tenantry.kernel.messaging import sql as q
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import TenantFixture


class Seeded(BaseModel):
    message_name: ClassVar[str] = "platform.IsolationSeeded.v1"
    note: str


def platform_of(client: httpx.AsyncClient) -> Platform:
    """The platform behind the test client (its ASGI app keeps it in ``state``)."""
    app = client._transport.app  # type: ignore[attr-defined]
    platform: Platform = app.state.platform
    return platform


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    platform = platform_of(client)
    with tenant_scope(tenant.tenant):
        async with platform.db.unit_of_work() as uow:
            mid = await platform.dispatcher.publish(uow, Seeded(note="isolation"))
            await uow.execute(q.INBOX_CLAIM, uow.tenant_id, "isolation-probe", mid)
            await uow.execute(
                q.INSERT_DEAD,
                uow.tenant_id,
                uuid.uuid4(),
                Seeded.message_name,
                "event",
                "isolation-probe",
                {"note": "dead"},
                {"tenant_id": str(uow.tenant_id)},
                1,
                "seeded",
            )
