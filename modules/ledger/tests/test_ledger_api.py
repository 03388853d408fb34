"""The ledger through HTTP: accounts, posting, idempotency, reversal, batch, reads, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.testing import MakeTenant
from tenantry_ledger.testing import API, Ledger, row_counts

PROBLEM = "https://tenantry.dev/problems/"


@pytest.fixture(scope="module")
async def shared(client: httpx.AsyncClient, make_tenant: MakeTenant) -> Ledger:
    return Ledger(client, await make_tenant())


async def test_accounts(shared: Ledger) -> None:
    acc = await shared.account("liability", "JPY", metadata={"owner": "x"})
    assert acc["allow_negative"] is False  # default for liabilities
    assert acc["minor_units"] == 0
    assert (acc["status"], acc["balance"], acc["debits"], acc["credits"]) == ("open", 0, 0, 0)
    asset = await shared.account("asset", "BHD")
    assert asset["allow_negative"] is True
    assert asset["minor_units"] == 3
    over = await shared.account("income", "USD", allow_negative=True)
    assert over["allow_negative"] is True
    c, h = shared.client, shared.auth
    r = await c.get(f"{API}/accounts/{acc['id']}", headers=h)
    assert r.json() == acc
    r = await c.post(
        f"{API}/accounts",
        headers=h,
        json={"code": acc["code"], "name": "dup", "type": "asset", "currency": "EUR"},
    )
    assert r.status_code == 409
    assert r.json()["type"] == PROBLEM + "ledger-duplicate-code"
    for bad in (
        {"currency": "XXZ"},
        {"currency": "eur"},
        {"type": "cash"},
        {"tenant_id": str(uuid.uuid4())},
    ):
        body = {"code": uuid.uuid4().hex, "name": "n", "type": "asset", "currency": "EUR", **bad}
        r = await c.post(f"{API}/accounts", headers=h, json=body)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await c.get(f"{API}/accounts/{uuid.uuid4()}", headers=h)
    assert r.status_code == 404
    assert r.json()["type"] == PROBLEM + "ledger-account-not-found"


async def test_transfer_balances_and_reads(shared: Ledger) -> None:
    cash = await shared.account("asset")
    bank = await shared.account("asset")
    await shared.fund(cash["id"], 1_000)
    r = await shared.transfer(cash["id"], bank["id"], 300)
    assert r.status_code == 201, r.text
    txn = r.json()
    assert txn["amount"] == 300
    assert [e["direction"] for e in txn["entries"]] == ["debit", "credit"]
    assert {e["currency"] for e in txn["entries"]} == {"EUR"}
    b = await shared.balance(cash["id"])
    assert (b["debits"], b["credits"], b["balance"], b["currency"]) == (1_000, 300, 700, "EUR")
    assert (await shared.balance(bank["id"]))["balance"] == 300
    r = await shared.client.get(f"{API}/transactions/{txn['id']}", headers=shared.auth)
    assert r.status_code == 200
    assert r.json() == txn
    r = await shared.client.get(f"{API}/transactions/{uuid.uuid4()}", headers=shared.auth)
    assert r.status_code == 404
    # The equity account (credit-normal) that funded the cash: balance = credits - debits.
    funding = await shared.client.get(f"{API}/accounts/{cash['id']}/entries", headers=shared.auth)
    first = funding.json()["items"][0]
    r = await shared.client.get(
        f"{API}/transactions/{first['transaction_id']}", headers=shared.auth
    )
    equity = next(e for e in r.json()["entries"] if e["direction"] == "credit")
    eb = await shared.balance(equity["account_id"])
    assert (eb["debits"], eb["credits"], eb["balance"]) == (0, 1_000, 1_000)


async def test_idempotency(shared: Ledger, platform: Platform) -> None:
    a = await shared.account("asset")
    b = await shared.account("asset")
    key = uuid.uuid4().hex
    first = await shared.transfer(a["id"], b["id"], 5, key)
    assert first.status_code == 201
    again = await shared.transfer(a["id"], b["id"], 5, key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await shared.transfer(a["id"], b["id"], 6, key)
    assert other.status_code == 409
    assert other.json()["type"] == PROBLEM + "idempotency-key-reused"
    assert (await shared.balance(b["id"]))["balance"] == 5
    r = await shared.client.post(
        f"{API}/transactions",
        headers=shared.auth,
        json={"entries": [{"account_id": a["id"], "direction": "debit", "amount": 1}]},
    )
    assert r.status_code == 400
    assert r.json()["type"] == PROBLEM + "idempotency-key-missing"


async def _problem(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM + slug, r.text


async def test_bad_input_leaves_no_row(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    t = await make_tenant()
    ledger = Ledger(client, t)
    eur = await ledger.account("asset")
    eur2 = await ledger.account("asset")
    usd = await ledger.account("asset", "USD")
    strict = await ledger.account("liability")  # cannot go negative
    closed = await ledger.account("asset")
    r = await client.post(f"{API}/accounts/{closed['id']}/close", headers=ledger.auth)
    assert r.json()["status"] == "closed"
    other = Ledger(client, await make_tenant())
    foreign = await other.account("asset")
    before = await row_counts(platform, t)
    e, e2 = eur["id"], eur2["id"]
    cases: list[tuple[list[tuple[str, str, Any]], int, str]] = [
        ([(e, "debit", 10), (e2, "credit", 9)], 422, "ledger-unbalanced"),
        ([(e, "debit", 10)], 422, "ledger-too-few-entries"),
        ([], 422, "ledger-too-few-entries"),
        ([(e, "debit", 0), (e2, "credit", 0)], 422, "validation-error"),
        ([(e, "debit", -5), (e2, "credit", -5)], 422, "validation-error"),
        ([(e, "debit", 1.5), (e2, "credit", 1.5)], 422, "validation-error"),
        # 1.0 is JSON Schema's integer 1 (accepted, as the OpenAPI document says); "5" is not
        ([(e, "debit", "5"), (e2, "credit", "5")], 422, "validation-error"),
        ([(e, "debit", 2**63), (e2, "credit", 2**63)], 422, "invalid-value"),
        ([(e, "debit", 10), (usd["id"], "credit", 10)], 422, "ledger-currency-mismatch"),
        ([(e, "debit", 10), (str(uuid.uuid4()), "credit", 10)], 404, "ledger-account-not-found"),
        ([(e, "debit", 10), (foreign["id"], "credit", 10)], 404, "ledger-account-not-found"),
        ([(e, "debit", 10), (closed["id"], "credit", 10)], 422, "ledger-account-closed"),
        ([(strict["id"], "debit", 10), (e, "credit", 10)], 409, "ledger-insufficient-funds"),
        ([(e, "sideways", 10), (e2, "credit", 10)], 422, "validation-error"),
    ]
    for entries, status, slug in cases:
        await _problem(await ledger.post(entries), status, slug)
    r = await ledger.post([(e, "debit", 1), (e2, "credit", 1)], tenant_id=str(uuid.uuid4()))
    await _problem(r, 422, "validation-error")
    r = await client.post(
        f"{API}/transactions",
        headers={**ledger.auth, "Idempotency-Key": "k"},
        content=b"{not json",
    )
    await _problem(r, 400, "bad-request")
    r = await client.post(
        f"{API}/transactions", headers={**ledger.auth, "Idempotency-Key": "~x"}, json={}
    )
    await _problem(r, 400, "idempotency-key-invalid")
    assert await row_counts(platform, t) == before
    # A refused key is not burnt: the same key can post a valid transaction afterwards.
    r = await ledger.post([(e, "debit", 10), (e2, "credit", 9)], key="retry-me")
    assert r.status_code == 422
    r = await ledger.post([(e, "debit", 10), (e2, "credit", 10)], key="retry-me")
    assert r.status_code == 201


async def test_close_only_at_zero(shared: Ledger) -> None:
    a = await shared.account("asset")
    b = await shared.account("asset")
    assert (await shared.transfer(a["id"], b["id"], 7)).status_code == 201
    r = await shared.client.post(f"{API}/accounts/{b['id']}/close", headers=shared.auth)
    await _problem(r, 409, "ledger-account-not-empty")
    assert (await shared.transfer(b["id"], a["id"], 7)).status_code == 201
    r = await shared.client.post(f"{API}/accounts/{b['id']}/close", headers=shared.auth)
    assert r.status_code == 200
    assert r.json()["status"] == "closed"


async def test_reversal(shared: Ledger) -> None:
    a = await shared.account("asset")
    b = await shared.account("asset")
    txn = (await shared.transfer(a["id"], b["id"], 40)).json()
    url = f"{API}/transactions/{txn['id']}/reverse"
    r = await shared.client.post(url, headers=shared.auth)
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["reverses"] == txn["id"]
    assert [e["direction"] for e in rev["entries"]] == ["credit", "debit"]
    assert (await shared.balance(a["id"]))["balance"] == 0
    assert (await shared.balance(b["id"]))["balance"] == 0
    again = await shared.client.post(url, headers=shared.auth)
    assert again.status_code == 201
    assert again.json()["id"] == rev["id"]  # reversing twice returns the one reversal
    r = await shared.client.post(f"{API}/transactions/{uuid.uuid4()}/reverse", headers=shared.auth)
    await _problem(r, 404, "ledger-transaction-not-found")


async def test_reversal_respects_allow_negative(shared: Ledger) -> None:
    src = await shared.account("asset")
    strict = await shared.account("liability")
    txn = (await shared.post([(src["id"], "debit", 30), (strict["id"], "credit", 30)])).json()
    spend = await shared.post([(strict["id"], "debit", 30), (src["id"], "credit", 30)])
    assert spend.status_code == 201
    r = await shared.client.post(f"{API}/transactions/{txn['id']}/reverse", headers=shared.auth)
    await _problem(r, 409, "ledger-insufficient-funds")


async def test_batch(shared: Ledger, platform: Platform) -> None:
    a = await shared.account("asset")
    b = await shared.account("asset")
    strict = await shared.account("liability")
    ok = {
        "idempotency_key": uuid.uuid4().hex,
        "entries": [
            {"account_id": b["id"], "direction": "debit", "amount": 3},
            {"account_id": a["id"], "direction": "credit", "amount": 3},
        ],
    }
    broke = {
        "idempotency_key": uuid.uuid4().hex,
        "entries": [
            {"account_id": strict["id"], "direction": "debit", "amount": 3},
            {"account_id": a["id"], "direction": "credit", "amount": 3},
        ],
    }
    bad_shape = {"idempotency_key": "x", "entries": [{"account_id": "nope"}]}
    url = f"{API}/transactions/batch"
    r = await shared.client.post(
        url, headers=shared.auth, json={"transactions": [ok, broke, bad_shape, ok]}
    )
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == [201, 409, 422, 422]  # last: key twice in the batch
    assert res[1]["error"]["type"] == PROBLEM + "ledger-insufficient-funds"
    assert (await shared.balance(b["id"]))["balance"] == 3
    # Replay: same key, same body -> the original transaction, not a second one.
    r = await shared.client.post(url, headers=shared.auth, json={"transactions": [ok]})
    assert r.json()["results"][0]["transaction"]["id"] == res[0]["transaction"]["id"]
    assert r.json()["results"][0]["replayed"] is True
    assert (await shared.balance(b["id"]))["balance"] == 3
    # Atomic: one refusal, nothing posted.
    ok2 = {**ok, "idempotency_key": uuid.uuid4().hex}
    r = await shared.client.post(
        url, headers=shared.auth, json={"atomic": True, "transactions": [ok2, broke]}
    )
    assert r.status_code == 409, r.text
    assert r.json()["type"] == PROBLEM + "ledger-batch-rejected"
    assert [x["status"] for x in r.json()["results"]] == [424, 409]
    assert (await shared.balance(b["id"]))["balance"] == 3
    r = await shared.client.post(
        url, headers=shared.auth, json={"atomic": True, "transactions": [ok2]}
    )
    assert r.json()["results"][0]["status"] == 201
    assert (await shared.balance(b["id"]))["balance"] == 6
    too_many = [{**ok, "idempotency_key": str(i)} for i in range(1001)]
    r = await shared.client.post(url, headers=shared.auth, json={"transactions": too_many})
    await _problem(r, 422, "validation-error")


async def test_batch_of_1000_is_one_unit_of_work(shared: Ledger) -> None:
    a = await shared.account("asset")
    accounts = [await shared.account("asset") for _ in range(5)]
    items = [
        {
            "idempotency_key": uuid.uuid4().hex,
            "entries": [
                {"account_id": accounts[i % 5]["id"], "direction": "debit", "amount": 1 + i % 7},
                {"account_id": a["id"], "direction": "credit", "amount": 1 + i % 7},
            ],
        }
        for i in range(1000)
    ]
    r = await shared.client.post(
        f"{API}/transactions/batch", headers=shared.auth, json={"transactions": items}
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1000
    total = sum(1 + i % 7 for i in range(1000))
    assert (await shared.balance(a["id"]))["balance"] == -total
    st = await shared.client.get(
        f"{API}/accounts/{a['id']}/entries", headers=shared.auth, params={"limit": 1000}
    )
    running = [e["balance_after"] for e in st.json()["items"]]
    assert running[-1] == -total
    assert running == sorted(running, reverse=True)


async def test_statement_as_of_and_lists(shared: Ledger) -> None:
    a = await shared.account("asset", metadata={"team": "blue"})
    b = await shared.account("asset")
    posted = []
    for amount in (10, 20, 30, 40):
        r = await shared.post(
            [(b["id"], "debit", amount), (a["id"], "credit", amount)],
            metadata={"batch": "s", "n": amount},
        )
        posted.append(r.json())
    c, h = shared.client, shared.auth
    # Statement: running balance, keyset pages of 3, both directions.
    r = await c.get(f"{API}/accounts/{b['id']}/entries", headers=h, params={"limit": 3})
    page = r.json()
    assert [e["balance_after"] for e in page["items"]] == [10, 30, 60]
    r = await c.get(
        f"{API}/accounts/{b['id']}/entries",
        headers=h,
        params={"limit": 3, "cursor": page["next_cursor"]},
    )
    assert [e["balance_after"] for e in r.json()["items"]] == [100]
    assert r.json()["next_cursor"] is None
    r = await c.get(f"{API}/accounts/{b['id']}/entries", headers=h, params={"sort": "-entry_no"})
    assert [e["amount"] for e in r.json()["items"]] == [40, 30, 20, 10]
    # as_of: the balance right after the second posting.
    b2 = await shared.balance(b["id"], as_of=posted[1]["posted_at"])
    assert (b2["debits"], b2["credits"], b2["balance"]) == (30, 0, 30)
    assert (await shared.balance(b["id"], as_of="2000-01-01T00:00:00Z"))["balance"] == 0
    # Transactions: filters (account, amount, metadata, posted_at), sort, cursor.
    doc = {"filters": [{"field": "account_id", "op": "eq", "value": b["id"]}]}
    r = await c.get(f"{API}/transactions", headers=h, params={"filter": orjson.dumps(doc).decode()})
    assert [t["amount"] for t in r.json()["items"]] == [40, 30, 20, 10]
    doc["filters"].append({"field": "amount", "op": "gte", "value": 25})
    r = await c.get(
        f"{API}/transactions",
        headers=h,
        params={"filter": orjson.dumps(doc).decode(), "sort": "amount", "limit": 1},
    )
    assert [t["amount"] for t in r.json()["items"]] == [30]
    r = await c.get(
        f"{API}/transactions",
        headers=h,
        params={
            "filter": orjson.dumps(doc).decode(),
            "sort": "amount",
            "limit": 1,
            "cursor": r.json()["next_cursor"],
        },
    )
    assert [t["amount"] for t in r.json()["items"]] == [40]
    assert r.json()["next_cursor"] is None
    meta = {
        "filters": [
            {"field": "metadata.n", "op": "eq", "value": 20},
            {"field": "posted_at", "op": "gte", "value": posted[0]["posted_at"]},
        ]
    }
    r = await c.post(f"{API}/transactions/search", headers=h, json=meta)
    assert [t["id"] for t in r.json()["items"]] == [posted[1]["id"]]
    # Accounts: filter by metadata and type, sort by code; bad filters are 422.
    doc = {"filters": [{"field": "metadata.team", "op": "eq", "value": "blue"}]}
    r = await c.get(f"{API}/accounts", headers=h, params={"filter": orjson.dumps(doc).decode()})
    assert [x["id"] for x in r.json()["items"]] == [a["id"]]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"sort": "-code", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        r = await c.get(f"{API}/accounts", headers=h, params=params)
        seen += [x["code"] for x in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) > 4
    for bad, status in (
        ({"filter": "{"}, 400),
        ({"filter": orjson.dumps({"filters": [{"field": "secret", "value": 1}]}).decode()}, 422),
        (
            {"filter": orjson.dumps({"filters": [{"field": "created_at", "value": 1}]}).decode()},
            422,
        ),
        (
            {"filter": orjson.dumps({"filters": [{"field": "metadata.x", "op": "gt"}]}).decode()},
            422,
        ),
        ({"sort": "name"}, 422),
        ({"cursor": "!!"}, 404),
    ):
        r = await c.get(f"{API}/accounts", headers=h, params=bad)
        assert r.status_code == status, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"


async def test_permissions(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    from tenantry.testing import PASSWORD, get_token

    t = await make_tenant()
    ledger = Ledger(client, t)
    a = await ledger.account("asset")
    email = f"viewer@{t.tenant.slug}.test"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": email, "password": PASSWORD, "roles": ["ledger-viewer"]},
    )
    assert r.status_code == 201, r.text
    viewer = {"Authorization": f"Bearer {await get_token(client, email, PASSWORD, t.tenant.slug)}"}
    assert (
        await client.get(f"{API}/accounts/{a['id']}/balance", headers=viewer)
    ).status_code == 200
    r = await client.post(
        f"{API}/accounts",
        headers=viewer,
        json={"code": "v", "name": "v", "type": "asset", "currency": "EUR"},
    )
    await _problem(r, 403, "forbidden")
    r = await client.post(
        f"{API}/transactions", headers={**viewer, "Idempotency-Key": "v"}, json={}
    )
    await _problem(r, 403, "forbidden")
    assert (await client.get(f"{API}/accounts")).status_code == 401


MAX = 2**63 - 1


async def test_amounts_and_totals_stay_in_int64(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    """Four legs of 2^63-1 balance but total 2^64-2; an account whose debits are already at
    2^63-1 cannot take one more unit. Both are 422 ``amount-out-of-range``, nothing written;
    exactly 2^63-1 is fine and reads back exactly."""
    t = await make_tenant()
    ledger = Ledger(client, t)
    a, b, c, d = [(await ledger.account("asset"))["id"] for _ in range(4)]
    eq = (await ledger.account("equity", allow_negative=True))["id"]
    before = await row_counts(platform, t)
    four = [(a, "debit", MAX), (b, "debit", MAX), (c, "credit", MAX), (d, "credit", MAX)]
    await _problem(await ledger.post(four), 422, "amount-out-of-range")
    assert await row_counts(platform, t) == before

    r = await ledger.post([(a, "debit", MAX), (eq, "credit", MAX)])
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == MAX
    assert (await ledger.balance(a))["balance"] == MAX
    after_max = await row_counts(platform, t)
    # a's debits are at the cap: one more debit would overflow them (and eq's credits).
    await _problem(
        await ledger.post([(a, "debit", 1), (b, "credit", 1)]), 422, "amount-out-of-range"
    )
    # Crediting a brings its balance down but its credits total stays in range: fine.
    r = await ledger.post([(b, "debit", 5), (a, "credit", 5)])
    assert r.status_code == 201, r.text
    assert (await ledger.balance(a))["balance"] == MAX - 5
    # Only the two accepted postings were written.
    assert (
        after_max["ledger_transactions"] + 1
        == (await row_counts(platform, t))["ledger_transactions"]
    )

    # A batch item that would overflow is refused on its own; the others post.
    items = [
        {"idempotency_key": "over", "entries": [
            {"account_id": a, "direction": "debit", "amount": MAX},
            {"account_id": c, "direction": "credit", "amount": MAX},
        ]},
        {"idempotency_key": "fine", "entries": [
            {"account_id": c, "direction": "debit", "amount": 1},
            {"account_id": d, "direction": "credit", "amount": 1},
        ]},
    ]  # fmt: skip
    r = await client.post(f"{API}/transactions/batch", headers=t.auth, json={"transactions": items})
    res = r.json()["results"]
    assert [x["status"] for x in res] == [422, 201], res
    assert res[0]["error"]["type"] == PROBLEM + "amount-out-of-range"

    # The database keeps the range too (last line of defence under the code).
    tt = t.tenant
    async with admin_connection(platform.db, tt.server, tt.database, as_owner=False) as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="totals_in_range"):
            await conn.execute(
                f'UPDATE "{tt.schema}".ledger_accounts SET debits = debits + $2 WHERE id = $1',
                uuid.UUID(a),
                MAX,
            )
