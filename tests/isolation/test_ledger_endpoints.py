"""Tenant B against tenant A's ledger through every ledger endpoint: 404, nothing written.

Run with both layers and with the tenant filter alone (RLS dropped: tests/isolation/
conftest.py). Not with RLS alone: the ledger's own INSERTs need the filter to write their
tenant_id, so the application does not run with it switched off."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tenantry_ledger.testing import API, Ledger, row_counts
from tests.isolation.conftest import Layers


@pytest.mark.parametrize("layers", ["both", "filter_only"], indirect=True)
@pytest.mark.parametrize(("mode_a", "mode_b"), [("shared", "shared"), ("schema", "shared")])
async def test_tenant_b_cannot_see_or_use_tenant_a_ledger(
    layers: Layers, mode_a: str, mode_b: str
) -> None:
    client, platform = layers.client, layers.platform
    a = Ledger(client, await layers.make_tenant(mode_a))
    b = Ledger(client, await layers.make_tenant(mode_b))
    await layers.isolate()
    a1, a2 = await a.account("asset"), await a.account("asset")
    key = "same-key-in-both-tenants"
    txn = (await a.transfer(a1["id"], a2["id"], 50, key)).json()
    b1 = await b.account("asset")
    before_a = await row_counts(platform, a.tenant)
    before_b = await row_counts(platform, b.tenant)
    h = b.auth
    for path in (
        f"/accounts/{a1['id']}",
        f"/accounts/{a1['id']}/balance",
        f"/accounts/{a1['id']}/entries",
        f"/transactions/{txn['id']}",
    ):
        r = await client.get(API + path, headers=h)
        assert r.status_code == 404, (path, r.text)
    for path in (f"/accounts/{a2['id']}/close", f"/transactions/{txn['id']}/reverse"):
        r = await client.post(API + path, headers=h)
        assert r.status_code == 404, (path, r.text)
    # Posting against A's accounts: 404, the same answer as an unknown account.
    r = await b.transfer(a1["id"], b1["id"], 1)
    assert r.status_code == 404
    assert r.json()["type"].endswith("ledger-account-not-found")
    unknown = await b.transfer(str(uuid.uuid4()), b1["id"], 1)
    assert unknown.status_code == 404
    assert unknown.json()["type"] == r.json()["type"]
    r = await client.post(
        f"{API}/transactions/batch",
        headers=h,
        json={
            "transactions": [
                {
                    "idempotency_key": uuid.uuid4().hex,
                    "entries": [
                        {"account_id": a1["id"], "direction": "debit", "amount": 1},
                        {"account_id": b1["id"], "direction": "credit", "amount": 1},
                    ],
                }
            ]
        },
    )
    assert r.json()["results"][0]["status"] == 404
    # Lists never show A's rows.
    # (Both tenants also have the default chart of accounts, with the same codes.)
    r = await client.get(f"{API}/accounts", headers=h, params={"limit": 100})
    seen_by_b = {x["id"] for x in r.json()["items"]}
    r = await client.get(f"{API}/accounts", headers=a.auth, params={"limit": 100})
    of_a = {x["id"] for x in r.json()["items"]}
    assert b1["id"] in seen_by_b
    assert {a1["id"], a2["id"]} <= of_a
    assert not seen_by_b & of_a
    doc = {"filters": [{"field": "account_id", "op": "eq", "value": a1["id"]}]}
    r = await client.get(
        f"{API}/transactions", headers=h, params={"filter": orjson.dumps(doc).decode()}
    )
    assert r.json()["items"] == []
    assert (await client.get(f"{API}/transactions", headers=h)).json()["items"] == []
    # Idempotency keys are per tenant: B's use of A's key posts B's own transaction.
    b2 = await b.account("asset")
    r = await b.transfer(b1["id"], b2["id"], 50, key)
    assert r.status_code == 201
    assert r.json()["id"] != txn["id"]
    assert "idempotent-replayed" not in r.headers
    assert await row_counts(platform, a.tenant) == before_a
    after_b = await row_counts(platform, b.tenant)
    assert after_b["ledger_transactions"] == before_b["ledger_transactions"] + 1
    assert (await a.balance(a2["id"]))["balance"] == 50
