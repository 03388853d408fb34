"""Ledger state changes are audited through the unit of work: account created and closed,
transactions posted (one record each, none for a refusal or a replay) and reversed; the
records join the tenant's hash chain and ``tenantry audit verify`` finds it intact."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tenantry.capabilities.audit.log import AuditLog
from tenantry.kernel.platform import Platform
from tenantry.testing import MakeTenant
from tenantry_ledger.testing import API, Ledger


async def ledger_records(client: httpx.AsyncClient, ledger: Ledger) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/audit/events?limit=200", headers=ledger.auth)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["action"].startswith("ledger.")]


async def test_postings_and_account_changes_are_audited(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    ledger = Ledger(client, await make_tenant())
    a = await ledger.account("asset")
    b = await ledger.account("asset")
    strict = await ledger.account("liability")
    key = uuid.uuid4().hex
    posted = await ledger.transfer(a["id"], b["id"], 30, key)
    assert posted.status_code == 201, posted.text
    assert (await ledger.transfer(a["id"], b["id"], 30, key)).status_code == 201  # replay
    refused = await ledger.transfer(a["id"], strict["id"], 5)  # debit: liability below zero
    assert refused.status_code == 409, refused.text
    txn = posted.json()["id"]
    r = await client.post(f"{API}/transactions/{txn}/reverse", headers=ledger.auth)
    assert r.status_code == 201, r.text
    empty = await ledger.account("asset")
    r = await client.post(f"{API}/accounts/{empty['id']}/close", headers=ledger.auth)
    assert r.status_code == 200, r.text

    records = await ledger_records(client, ledger)
    actions = sorted(e["action"] for e in records)
    assert actions == sorted(
        ["ledger.account.create"] * 4
        + ["ledger.account.close", "ledger.transaction.post", "ledger.transaction.reverse"]
    )
    post = next(e for e in records if e["action"] == "ledger.transaction.post")
    assert post["resource"] == f"transaction:{txn}"
    assert post["actor"] is not None
    assert post["details"] == {"idempotency_key": key}
    assert post["after"]["amount"] == 30
    assert sorted(post["after"]["entries"]) == sorted(
        [[b["id"], "debit", 30], [a["id"], "credit", 30]]
    )
    log = platform.use(AuditLog)
    count, problems = await log.verify(ledger.tenant.tenant)
    assert problems == []
    assert count >= len(records)
