"""Concurrency on a real PostgreSQL: no overdraft under contention, exactly-once by key,
no deadlock when transfers lock the same accounts in opposite orders."""

from __future__ import annotations

import asyncio
import random
import uuid

import httpx

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.kernel.platform import Platform
from tenantry.testing import MakeTenant
from tenantry_ledger.testing import Ledger, row_counts


async def test_200_concurrent_transfers_never_overdraw(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    tenant = await make_tenant()
    # 200 requests at once exceed the free plan's burst (rate limits): a bigger plan.
    await platform.use(Plans).set_override(tenant.tenant, {"burst": 1000})
    ledger = Ledger(client, tenant)
    wallet = await ledger.account("liability")  # cannot go negative
    sinks = [await ledger.account("liability", allow_negative=True) for _ in range(4)]
    start = 5_000
    funding = await ledger.account("asset")
    r = await ledger.post([(funding["id"], "debit", start), (wallet["id"], "credit", start)])
    assert r.status_code == 201
    rng = random.Random(7)
    amounts = [rng.randint(1, 60) for _ in range(200)]

    async def one(i: int, amount: int) -> tuple[int, int]:
        sink = sinks[i % 4]["id"]
        # Half the transfers list the accounts in the other order (lock order is by id).
        entries = [(wallet["id"], "debit", amount), (sink, "credit", amount)]
        if i % 2:
            entries.reverse()
        r = await ledger.post(entries)
        assert r.status_code in (201, 409), r.text
        return r.status_code, amount

    results = await asyncio.gather(*(one(i, a) for i, a in enumerate(amounts)))
    accepted = sum(a for status, a in results if status == 201)
    refused = [a for status, a in results if status == 409]
    assert accepted <= start
    assert refused, "the test should exhaust the wallet"
    b = await ledger.balance(wallet["id"])
    assert b["balance"] == start - accepted >= 0
    assert b["debits"] == accepted
    sink_total = sum([(await ledger.balance(s["id"]))["balance"] for s in sinks])
    assert sink_total == accepted
    counts = await row_counts(platform, ledger.tenant)
    n_ok = sum(1 for s, _ in results if s == 201)
    assert counts["ledger_transactions"] == n_ok + 1
    assert counts["ledger_idempotency_keys"] == n_ok + 1


async def test_same_key_20_times_at_once_posts_once(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    ledger = Ledger(client, await make_tenant())
    a = await ledger.account("asset")
    b = await ledger.account("asset")
    key = uuid.uuid4().hex
    responses = await asyncio.gather(
        *(ledger.transfer(a["id"], b["id"], 9, key) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(1 for r in responses if "idempotent-replayed" not in r.headers) == 1
    assert (await ledger.balance(b["id"]))["balance"] == 9
    counts = await row_counts(platform, ledger.tenant)
    assert counts["ledger_transactions"] == 1
    assert counts["ledger_entries"] == 2


async def test_crossing_batches_do_not_deadlock(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    ledger = Ledger(client, await make_tenant())
    accs = [await ledger.account("asset") for _ in range(6)]

    def batch(seed: int) -> dict[str, object]:
        rng = random.Random(seed)
        items = []
        for _ in range(50):
            x, y = rng.sample(accs, 2)
            items.append(
                {
                    "idempotency_key": uuid.uuid4().hex,
                    "entries": [
                        {"account_id": x["id"], "direction": "debit", "amount": 1},
                        {"account_id": y["id"], "direction": "credit", "amount": 1},
                    ],
                }
            )
        return {"transactions": items}

    url = "/api/v1/ledger/transactions/batch"
    rs = await asyncio.wait_for(
        asyncio.gather(*(client.post(url, headers=ledger.auth, json=batch(s)) for s in range(8))),
        timeout=60,
    )
    assert all(r.status_code == 200 and r.json()["accepted"] == 50 for r in rs)
    total = sum([(await ledger.balance(a["id"]))["balance"] for a in accs])
    assert total == 0
