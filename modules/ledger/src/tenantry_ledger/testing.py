"""Test helpers of the ledger, for its tests and any other's: ``Ledger`` (a tenant's view of
the ledger API: accounts, postings, balances), ``row_counts`` (a tenant's rows in every
ledger table), and ``seed``, the module's isolation seeder (entry point
``tenantry.isolation_seeds``): accounts, a transaction with its entries, and its
idempotency key."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tenantry.kernel.platform import Platform
from tenantry.testing import TenantFixture, admin_connection

API = "/api/v1/ledger"


class Ledger:
    """A tenant's view of the ledger API, for tests."""

    def __init__(self, client: httpx.AsyncClient, tenant: TenantFixture) -> None:
        self.client = client
        self.tenant = tenant
        self.auth = tenant.auth

    async def account(
        self, type_: str = "asset", currency: str = "EUR", **extra: Any
    ) -> dict[str, Any]:
        body = {
            "code": extra.pop("code", f"acc-{uuid.uuid4().hex[:10]}"),
            "name": extra.pop("name", "Test account"),
            "type": type_,
            "currency": currency,
            **extra,
        }
        r = await self.client.post(f"{API}/accounts", json=body, headers=self.auth)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    async def post(
        self, entries: list[tuple[str, str, Any]], key: str | None = None, **body: Any
    ) -> httpx.Response:
        doc = {
            "entries": [{"account_id": a, "direction": d, "amount": amt} for a, d, amt in entries],
            **body,
        }
        headers = {**self.auth, "Idempotency-Key": key or uuid.uuid4().hex}
        return await self.client.post(f"{API}/transactions", json=doc, headers=headers)

    async def transfer(self, src: str, dst: str, amount: int, key: str | None = None) -> Any:
        """Move ``amount`` from ``src`` to ``dst`` (credit src, debit dst)."""
        return await self.post([(dst, "debit", amount), (src, "credit", amount)], key)

    async def balance(self, account_id: str, **params: Any) -> dict[str, Any]:
        r = await self.client.get(
            f"{API}/accounts/{account_id}/balance", headers=self.auth, params=params
        )
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def fund(self, account_id: str, amount: int, currency: str = "EUR") -> None:
        """Credit-normal account funded from a fresh equity account."""
        equity = await self.account("equity", currency, allow_negative=True)
        r = await self.transfer(equity["id"], account_id, amount)
        assert r.status_code == 201, r.text


async def row_counts(platform: Platform, tenant: TenantFixture) -> dict[str, int]:
    """Rows of the tenant in every ledger table (as the superuser: no RLS in the way)."""
    t = tenant.tenant
    out = {}
    async with admin_connection(platform.db, t.server, t.database, as_owner=False) as conn:
        for table in (
            "ledger_accounts",
            "ledger_transactions",
            "ledger_entries",
            "ledger_idempotency_keys",
        ):
            out[table] = await conn.fetchval(
                f'SELECT count(*) FROM "{t.schema}".{table} WHERE tenant_id = $1', t.id
            )
    return out


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    ids = []
    for type_ in ("asset", "equity"):
        r = await client.post(
            f"{API}/accounts",
            headers=tenant.auth,
            json={"code": f"seed-{type_}", "name": "seed", "type": type_, "currency": "EUR"},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = await client.post(
        f"{API}/transactions",
        headers={**tenant.auth, "Idempotency-Key": uuid.uuid4().hex},
        json={
            "description": "seed",
            "entries": [
                {"account_id": ids[0], "direction": "debit", "amount": 100},
                {"account_id": ids[1], "direction": "credit", "amount": 100},
            ],
        },
    )
    assert r.status_code == 201, r.text
