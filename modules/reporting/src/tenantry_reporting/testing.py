"""The reporting module's test helpers: ``posted`` (a ``TransactionPosted`` event as the
ledger publishes it) and ``seed``, the module's isolation seeder (entry point
``tenantry.isolation_seeds``): an event published in the tenant's unit of work, folded by
the reporting consumer, read back through the API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx

from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import TenantFixture, platform_of
from tenantry_ledger.contracts import PostedEntry, TransactionPosted


def posted(day: datetime, amount: int = 1250, currency: str = "EUR") -> TransactionPosted:
    cash, sales = uuid.uuid4(), uuid.uuid4()
    return TransactionPosted(
        transaction_id=uuid.uuid4(),
        posted_at=day,
        description="seed",
        entries=[
            PostedEntry(
                account_id=cash,
                account_code="1000",
                currency=currency,
                direction="debit",
                amount=amount,
            ),
            PostedEntry(
                account_id=sales,
                account_code="4000",
                currency=currency,
                direction="credit",
                amount=amount,
            ),
        ],
    )


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    platform = platform_of(client)
    with tenant_scope(tenant.tenant):
        async with platform.db.unit_of_work() as uow:
            await platform.dispatcher.publish(uow, posted(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    for _ in range(200):
        r = await client.get(
            "/api/v1/reporting/daily",
            params={"from": "2026-03-01", "to": "2026-03-01"},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        if r.json()["items"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the reporting consumer did not fold the seeded event")
