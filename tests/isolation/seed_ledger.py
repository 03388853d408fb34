"""Ledger rows: accounts, a transaction with its entries, and its idempotency key."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import TenantFixture

API = "/api/v1/ledger"


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
