"""Reporting's and the audit log's export sources end to end: the rows an export contains
are the ones the source's own API shows, and never another tenant's."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tenantry.capabilities.audit.log import AuditLog
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry_reporting.testing import posted
from tests.conftest import PASSWORD, MakeTenant
from tests.export.test_ledger_sources import _export
from tests.messaging.conftest import eventually


async def test_reporting_daily_export(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    day = datetime(2026, 3, 9, 12, tzinfo=UTC)
    for t, currency in ((a, "EUR"), (b, "USD")):
        with tenant_scope(t.tenant):
            async with platform.db.unit_of_work() as uow:
                await platform.dispatcher.publish(uow, posted(day, 5, currency))

    async def folded() -> bool:
        r = await client.get(
            "/api/v1/reporting/daily",
            params={"from": "2026-03-09", "to": "2026-03-09"},
            headers=a.auth,
        )
        return bool(r.json()["items"])

    await eventually(folded)
    api = (
        await client.get(
            "/api/v1/reporting/daily",
            params={"from": "2026-03-09", "to": "2026-03-09"},
            headers=a.auth,
        )
    ).json()["items"]
    rows = await _export(client, platform, a, "reporting.daily")
    assert rows[0] == [
        "day",
        "account_id",
        "account_code",
        "currency",
        "debit",
        "credit",
        "volume",
        "count",
    ]
    exported = sorted((r[1], r[3], int(r[6]), int(r[7])) for r in rows[1:])
    assert exported == sorted(
        (x["account_id"], x["currency"], x["volume"], x["count"]) for x in api
    )
    assert {r[3] for r in rows[1:]} == {"EUR"}  # none of B's USD rows


async def test_audit_events_export(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    for t in (a, b):
        r = await client.post(
            "/api/v1/identity/users",
            headers=t.auth,
            json={"email": f"audited@{t.tenant.slug}.test", "password": PASSWORD},
        )
        assert r.status_code == 201, r.text
    # The source reads chained records only: chain A's pending ones (identity's membership
    # records are written at commit and chained in batches, as the chainer does within ~1 s).
    await platform.use(AuditLog).chain(a.tenant)
    rows = await _export(client, platform, a, "audit.events")
    header, data = rows[0], rows[1:]
    assert header[:3] == ["seq", "id", "occurred_at"]
    ids = {r[1] for r in data}
    api = (await client.get("/api/v1/audit/events", params={"limit": 1000}, headers=a.auth)).json()[
        "items"
    ]
    api_ids = {x["id"] for x in api}
    assert ids  # the membership change above was audited
    assert ids <= api_ids  # the export holds A's events only (later events may follow it)
    b_ids = {
        x["id"]
        for x in (
            await client.get("/api/v1/audit/events", params={"limit": 1000}, headers=b.auth)
        ).json()["items"]
    }
    assert not ids & b_ids
