"""Reporting consumes ledger.TransactionPosted.v1 (inproc and over the bus) into a per-tenant
daily summary; a message for tenant A never writes tenant B's rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.messaging.dispatcher import envelope_from_row
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry_ledger.contracts import PostedEntry, TransactionPosted
from tenantry_reporting.testing import posted
from tests.conftest import MakeTenant, TenantFixture
from tests.messaging.conftest import eventually


async def daily(client: httpx.AsyncClient, t: TenantFixture, start: str, end: str) -> Any:
    r = await client.get(
        "/api/v1/reporting/daily", params={"from": start, "to": end}, headers=t.auth
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_daily_summary_from_posted_events(
    probed: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant, transport: str
) -> None:
    a = await make_tenant("schema")
    b = await make_tenant("shared")
    acct = uuid.uuid4()
    day = datetime(2026, 4, 2, 23, 30, tzinfo=UTC)
    events = [
        TransactionPosted(
            transaction_id=uuid.uuid4(),
            posted_at=day,
            description=f"t{i}",
            entries=[
                PostedEntry(
                    account_id=acct,
                    account_code="1000",
                    currency="EUR",
                    direction="debit",
                    amount=100 * (i + 1),
                ),
                PostedEntry(
                    account_id=uuid.uuid4(),
                    account_code="4000",
                    currency="EUR",
                    direction="credit",
                    amount=100 * (i + 1),
                ),
            ],
        )
        for i in range(3)
    ]
    with tenant_scope(a.tenant):
        for ev in events:
            async with probed.db.unit_of_work() as uow:
                await probed.dispatcher.publish(uow, ev)
    with tenant_scope(b.tenant):
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish(uow, posted(day, 7, "USD"))

    async def folded() -> bool:
        rows = await daily(client, a, "2026-04-02", "2026-04-02")
        return any(r["account_id"] == str(acct) and r["count"] == 3 for r in rows)

    await eventually(folded)
    rows = await daily(client, a, "2026-04-01", "2026-04-03")
    mine = [r for r in rows if r["account_id"] == str(acct)]
    assert mine == [
        {
            "day": "2026-04-02",
            "account_id": str(acct),
            "account_code": "1000",
            "currency": "EUR",
            "debit": 600,
            "credit": 0,
            "volume": 600,
            "count": 3,
        }
    ]
    assert len(rows) == 4  # one debit account + three credit accounts, no USD of tenant B
    assert await daily(client, a, "2026-04-03", "2026-04-03") == []

    async def b_folded() -> bool:  # B's event is delivered on its own schedule
        return bool(await daily(client, b, "2026-04-02", "2026-04-02"))

    await eventually(b_folded)
    b_rows = await daily(client, b, "2026-04-02", "2026-04-02")
    assert {r["currency"] for r in b_rows} == {"USD"}


async def test_ranges_between_parameters_are_never_errors(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """``to`` before ``from`` is empty; a range over 366 days comes in pages (``next_from``):
    no schema can state a rule between two parameters, so neither is a 422."""
    a = await make_tenant()
    r = await client.get(
        "/api/v1/reporting/daily",
        params={"from": "2026-04-02", "to": "2026-04-01"},
        headers=a.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"from": "2026-04-02", "to": "2026-04-01", "items": [], "next_from": None}
    r = await client.get(
        "/api/v1/reporting/daily", params={"from": "2000-01-01", "to": "2589-01-01"}, headers=a.auth
    )
    assert r.status_code == 200, r.text
    assert (r.json()["to"], r.json()["next_from"]) == ("2000-12-31", "2001-01-01")
    r = await client.get(
        "/api/v1/reporting/daily", params={"from": "2026-01-01", "to": "2026-12-31"}, headers=a.auth
    )
    assert (r.json()["to"], r.json()["next_from"]) == ("2026-12-31", None)


async def test_message_for_a_cannot_write_b_rows(probed: Platform, make_tenant: MakeTenant) -> None:
    """The consumer runs in the sender's tenant (from the headers): RLS refuses any write of
    another tenant's rows, even by a handler that tries on purpose."""
    a = (await make_tenant()).tenant
    b = (await make_tenant()).tenant
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            mid = await probed.dispatcher.publish(uow, posted(datetime(2026, 5, 1, tzinfo=UTC)))
            await uow.write_collected()  # written at commit; now, to read it back here
            row = await uow.fetchrow("SELECT * FROM outbox WHERE message_id = $1", mid)
    assert row is not None
    env = envelope_from_row(row)
    assert env.headers.tenant_id == a.id
    with tenant_scope(a):
        async with tenant_unit_of_work(probed.db, a) as uow:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await uow.execute(
                    "INSERT INTO reporting_daily (tenant_id, day, account_id, account_code,"
                    " currency) VALUES ($1, '2026-05-01', $2, 'x', 'EUR')",
                    b.id,
                    uuid.uuid4(),
                )
