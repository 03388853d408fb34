"""Posting writes ledger.TransactionPosted.v1 in the same
transaction: one event per posted transaction, none for a refused one."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import MakeTenant
from tenantry_ledger.application.services import LedgerService
from tenantry_ledger.domain.model import Direction, Draft, Entry, InsufficientFunds
from tenantry_ledger.infrastructure.repository import SqlLedgerRepository
from tenantry_ledger.testing import Ledger


async def outbox(platform: Platform, ledger: Ledger) -> list[Any]:
    t = ledger.tenant.tenant
    async with admin_connection(platform.db, t.server, t.database, as_owner=False) as conn:
        return list(
            await conn.fetch(
                f'SELECT payload FROM "{t.schema}".outbox'
                " WHERE tenant_id = $1 AND name = 'ledger.TransactionPosted.v1'",
                t.id,
            )
        )


async def test_posted_transactions_reach_the_outbox(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    ledger = Ledger(client, await make_tenant())
    a = await ledger.account("asset")
    strict = await ledger.account("liability")
    service = LedgerService(platform.db.unit_of_work, SqlLedgerRepository())
    a_id, s_id = uuid.UUID(a["id"]), uuid.UUID(strict["id"])
    with tenant_scope(ledger.tenant.tenant):
        ok = await service.post_one(
            "e1",
            Draft("", {}, (Entry(a_id, Direction.DEBIT, 25), Entry(s_id, Direction.CREDIT, 25))),
        )
        with pytest.raises(InsufficientFunds):
            await service.post_one(
                "e2",
                Draft(
                    "", {}, (Entry(s_id, Direction.DEBIT, 99), Entry(a_id, Direction.CREDIT, 99))
                ),
            )
    rows = await outbox(platform, ledger)
    assert len(rows) == 1  # the refused posting published nothing
    payload = rows[0]["payload"]
    assert ok.transaction is not None
    assert payload["transaction_id"] == ok.transaction["id"]
    assert [(e["account_code"], e["direction"], e["amount"]) for e in payload["entries"]] == [
        (a["code"], "debit", 25),
        (strict["code"], "credit", 25),
    ]


async def test_batch_mixed_outcomes_publish_one_event_per_posted_transaction(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    """Every item well-formed (the one-pass parse): each keeps its own key and outcome, a
    refusal does not fail the others, and the batch's single outbox statement holds one
    event per posted transaction, in order."""
    ledger = Ledger(client, await make_tenant())
    a = await ledger.account("asset")
    strict = await ledger.account("liability")

    def item(key: str, debit: str, credit: str, amount: int) -> dict[str, Any]:
        return {
            "idempotency_key": key,
            "entries": [
                {"account_id": debit, "direction": "debit", "amount": amount},
                {"account_id": credit, "direction": "credit", "amount": amount},
            ],
        }

    k1, k2, k3 = (uuid.uuid4().hex for _ in range(3))
    items = [
        item(k1, a["id"], strict["id"], 10),  # strict goes to 10
        item(k2, strict["id"], a["id"], 50),  # would take strict below zero: refused
        item(k3, strict["id"], a["id"], 4),  # strict back to 6
        item(k1, a["id"], strict["id"], 11),  # key used twice in the batch
    ]
    url = "/api/v1/ledger/transactions/batch"
    r = await client.post(url, headers=ledger.auth, json={"transactions": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 409, 201, 422]
    assert (body["accepted"], body["refused"]) == (2, 2)
    assert body["results"][1]["error"]["type"].endswith("ledger-insufficient-funds")
    assert (await ledger.balance(strict["id"]))["balance"] == 6
    rows = await outbox(platform, ledger)
    posted = [body["results"][0]["transaction"]["id"], body["results"][2]["transaction"]["id"]]
    assert sorted(row["payload"]["transaction_id"] for row in rows) == sorted(posted)
    # The refused item's key was released: the same key posts once funds allow.
    r = await client.post(
        url, headers=ledger.auth, json={"transactions": [item(k2, strict["id"], a["id"], 5)]}
    )
    assert r.json()["results"][0]["status"] == 201
    assert (await ledger.balance(strict["id"]))["balance"] == 1
    assert len(await outbox(platform, ledger)) == 3
