"""The ledger's export sources end to end: post through the ledger API, export, compare."""

from __future__ import annotations

import csv
import io

import httpx

from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant, TenantFixture

API = "/api/v1/exports"


async def _account(client: httpx.AsyncClient, t: TenantFixture, code: str, kind: str) -> str:
    r = await client.post(
        "/api/v1/ledger/accounts",
        headers=t.auth,
        json={"code": code, "name": f"Account {code}", "type": kind, "currency": "EUR"},
    )
    assert r.status_code == 201, r.text
    account_id: str = r.json()["id"]
    return account_id


async def _export(
    client: httpx.AsyncClient, platform: Platform, t: TenantFixture, source: str
) -> list[list[str]]:
    r = await client.post(API, headers=t.auth, json={"source": source, "format": "csv"})
    assert r.status_code == 202, r.text
    await platform.jobs.run_pending([t.tenant])
    e = (await client.get(f"{API}/{r.json()['id']}", headers=t.auth)).json()
    assert e["status"] == "succeeded", e
    body = (await client.get(e["download_url"])).content.decode()
    return list(csv.reader(io.StringIO(body)))


async def test_ledger_entries_and_accounts_export(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    # No default chart of accounts: this test opens its own 1000 and 4000.
    a, b = await make_tenant(chart_of_accounts="none"), await make_tenant("schema")
    cash = await _account(client, a, "1000", "asset")
    sales = await _account(client, a, "4000", "income")
    await _account(client, b, "9999", "asset")  # B's ledger must never show up in A's export
    for i, amount in enumerate((500, 250, 125), 1):
        r = await client.post(
            "/api/v1/ledger/transactions",
            headers={**a.auth, "Idempotency-Key": f"sale-{i}"},
            json={
                "description": f"sale {i}",
                "entries": [
                    {"account_id": cash, "direction": "debit", "amount": amount},
                    {"account_id": sales, "direction": "credit", "amount": amount},
                ],
            },
        )
        assert r.status_code == 201, r.text
    rows = await _export(client, platform, a, "ledger.entries")
    assert rows[0][:2] == ["account_code", "entry_no"]
    lines = [(r[0], int(r[1]), r[6], int(r[7]), r[9]) for r in rows[1:]]
    assert lines == [
        ("1000", 1, "debit", 500, "sale 1"),
        ("1000", 2, "debit", 250, "sale 2"),
        ("1000", 3, "debit", 125, "sale 3"),
        ("4000", 1, "credit", 500, "sale 1"),
        ("4000", 2, "credit", 250, "sale 2"),
        ("4000", 3, "credit", 125, "sale 3"),
    ]
    accounts = await _export(client, platform, a, "ledger.accounts")
    assert [r[1] for r in accounts[1:]] == ["1000", "4000"]
    transactions = await _export(client, platform, a, "ledger.transactions")
    assert [r[2] for r in transactions[1:]] == ["sale 1", "sale 2", "sale 3"]
