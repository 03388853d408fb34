"""One rule for idempotency keys on every route that takes one (issue 12, item 6).

An empty, blank, over-long or non-ASCII key used to be taken as a key (``Idempotency-Key: " "``
posted a transaction; the export route stored ``""``). Each route must refuse it and write
nothing: 400 ``idempotency-key-invalid`` for the header, a refused item for a batch key.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry_ledger.testing import API, Ledger, row_counts
from tests.conftest import MakeTenant

PROBLEM = "https://tenantry.dev/problems/"

# Raw header bytes: what a client can put on the wire.
BAD_KEYS: list[bytes] = [
    b"",
    b" ",
    b" \t ",
    b" leading-space",
    b"trailing-space ",
    b"x" * 256,
    b"x" * 10_000,
    "\u00e9".encode() * 100,  # 200 bytes, 100 characters, not ASCII
    b"~reserved",
    b"bell\x07",
]
GOOD_KEYS = ["a", "x" * 255, "order 1234", "a~", "}"]


def _entries(a: str, b: str) -> list[dict[str, object]]:
    return [
        {"account_id": a, "direction": "debit", "amount": 1},
        {"account_id": b, "direction": "credit", "amount": 1},
    ]


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k[:12]))
async def test_bad_header_key_posts_nothing(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform, key: bytes
) -> None:
    t = await make_tenant()
    ledger = Ledger(client, t)
    a, b = (await ledger.account("asset"))["id"], (await ledger.account("asset"))["id"]
    before = await row_counts(platform, t)
    r = await client.post(
        f"{API}/transactions",
        json={"entries": _entries(a, b)},
        headers=[*((k.encode(), v.encode()) for k, v in t.auth.items()), (b"Idempotency-Key", key)],
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM + "idempotency-key-invalid"
    assert await row_counts(platform, t) == before

    r = await client.post(
        "/api/v1/exports",
        json={"source": "ledger.accounts", "format": "csv"},
        headers=[*((k.encode(), v.encode()) for k, v in t.auth.items()), (b"Idempotency-Key", key)],
    )
    assert r.status_code == 400, r.text
    assert r.json()["type"] == PROBLEM + "idempotency-key-invalid"
    with tenant_scope(t.tenant):
        async with platform.db.unit_of_work(readonly=True) as uow:
            assert await uow.fetchval("SELECT count(*) FROM exports") == 0


async def test_batch_item_keys_follow_the_same_rule(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    t = await make_tenant()
    ledger = Ledger(client, t)
    a, b = (await ledger.account("asset"))["id"], (await ledger.account("asset"))["id"]
    before = await row_counts(platform, t)
    bad = [k.decode("utf-8", "replace") for k in BAD_KEYS]
    items = [{"idempotency_key": k, "entries": _entries(a, b)} for k in bad]
    r = await client.post(f"{API}/transactions/batch", json={"transactions": items}, headers=t.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["refused"]) == (0, len(bad)), body
    assert await row_counts(platform, t) == before


async def test_good_keys_are_accepted_and_replayed(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    ledger = Ledger(client, t)
    a, b = (await ledger.account("asset"))["id"], (await ledger.account("asset"))["id"]
    for key in GOOD_KEYS:
        r = await ledger.post([(a, "debit", 1), (b, "credit", 1)], key=key)
        assert r.status_code == 201, (key, r.text)
        again = await ledger.post([(a, "debit", 1), (b, "credit", 1)], key=key)
        assert again.headers["idempotent-replayed"] == "true"
    r = await client.post(
        f"{API}/transactions/batch",
        json={"transactions": [{"idempotency_key": uuid.uuid4().hex, "entries": _entries(a, b)}]},
        headers=t.auth,
    )
    assert r.json()["accepted"] == 1, r.text
