"""End to end: a transaction posted through the ledger's HTTP API is published in the
posting's unit of work and folded by reporting (in-process and over the bus); a rejected
posting publishes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry_ledger.testing import Ledger
from tests.conftest import MakeTenant
from tests.messaging.conftest import eventually


async def test_posting_reaches_reporting(
    probed: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant, transport: str
) -> None:
    ledger = Ledger(client, await make_tenant())
    cash = await ledger.account("asset")
    equity = await ledger.account("equity", allow_negative=True)
    r = await ledger.transfer(equity["id"], cash["id"], 1500)
    assert r.status_code == 201, r.text
    r = await ledger.post([(cash["id"], "debit", 5), (equity["id"], "credit", 4)])
    assert r.status_code >= 400  # unbalanced: refused, rolled back, nothing published
    r = await ledger.transfer(equity["id"], cash["id"], 250)
    assert r.status_code == 201, r.text
    today = datetime.now(UTC).date().isoformat()

    async def folded() -> bool:
        res = await client.get(
            "/api/v1/reporting/daily", params={"from": today, "to": today}, headers=ledger.auth
        )
        assert res.status_code == 200, res.text
        rows = {i["account_id"]: i for i in res.json()["items"]}
        return bool(rows.get(cash["id"], {}).get("count") == 2)

    try:
        await eventually(folded)
    except AssertionError:
        res = await client.get(
            "/api/v1/reporting/daily", params={"from": today, "to": today}, headers=ledger.auth
        )
        with tenant_scope(ledger.tenant.tenant):
            async with probed.db.unit_of_work() as uow:
                out = await uow.fetch("SELECT name, delivered_at, last_error FROM outbox")
        raise AssertionError(f"{res.json()} outbox={[dict(o) for o in out]}") from None
    res = await client.get(
        "/api/v1/reporting/daily", params={"from": today, "to": today}, headers=ledger.auth
    )
    rows = {i["account_id"]: i for i in res.json()["items"]}
    assert rows[cash["id"]]["debit"] == 1750
    assert rows[equity["id"]]["credit"] == 1750
    assert rows[equity["id"]]["count"] == 2
