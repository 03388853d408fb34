"""Property: whatever sequence of transactions is sent (valid or not), what the ledger accepted
keeps, per tenant and currency, total debits = total credits, and every account's totals equal
the sum of its entries (and its last running balance), with no forbidden negative balance."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.testing import MakeTenant
from tenantry_ledger.testing import Ledger

# (type, currency, allow_negative)
ACCOUNTS = [
    ("asset", "EUR", None),
    ("liability", "EUR", None),
    ("income", "EUR", None),
    ("asset", "USD", None),
    ("equity", "USD", None),
    ("expense", "USD", None),
]


@pytest.fixture(scope="module")
async def book(client: httpx.AsyncClient, make_tenant: MakeTenant) -> tuple[Ledger, list[str]]:
    # Up to 25 examples x 6 posts (plus shrinking) in a few seconds: more than the free plan's
    # rate limit (10/s, burst 100) once requests are fast enough, so a plan they fit in.
    ledger = Ledger(client, await make_tenant(plan="pro"))
    ids = []
    for type_, currency, neg in ACCOUNTS:
        extra: dict[str, bool] = {} if neg is None else {"allow_negative": neg}
        ids.append((await ledger.account(type_, currency, **extra))["id"])
    return ledger, ids


entry = st.tuples(
    st.integers(0, len(ACCOUNTS) - 1),
    st.sampled_from(["debit", "credit"]),
    st.integers(1, 500),
)


@st.composite
def transaction(draw: st.DrawFn) -> list[tuple[int, str, int]]:
    """Mostly balanced single-currency transactions, sometimes anything at all."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.lists(entry, min_size=0, max_size=4))
    currency = draw(st.sampled_from(["EUR", "USD"]))
    idx = [i for i, a in enumerate(ACCOUNTS) if a[1] == currency]
    debits = draw(
        st.lists(st.tuples(st.sampled_from(idx), st.integers(1, 500)), min_size=1, max_size=2)
    )
    total = sum(a for _, a in debits)
    cut = draw(st.integers(1, total)) if total > 1 else total
    credits = [(draw(st.sampled_from(idx)), cut)]
    if total - cut:
        credits.append((draw(st.sampled_from(idx)), total - cut))
    return [(i, "debit", a) for i, a in debits] + [(i, "credit", a) for i, a in credits]


INVARIANTS = """
WITH e AS (
    SELECT e.*, a.currency FROM {s}.ledger_entries e
    JOIN {s}.ledger_accounts a ON a.tenant_id = e.tenant_id AND a.id = e.account_id
    WHERE e.tenant_id = $1
)
SELECT
  (SELECT coalesce(jsonb_object_agg(currency, d - c), '{{}}') FROM (
      SELECT currency, sum(amount) FILTER (WHERE direction = 'debit') AS d,
             sum(amount) FILTER (WHERE direction = 'credit') AS c
      FROM e GROUP BY currency) x WHERE d <> c) AS unbalanced_currencies,
  (SELECT count(*) FROM {s}.ledger_accounts a WHERE a.tenant_id = $1 AND (
      a.debits <> (SELECT coalesce(sum(amount), 0) FROM e
                   WHERE e.account_id = a.id AND direction = 'debit')
      OR a.credits <> (SELECT coalesce(sum(amount), 0) FROM e
                       WHERE e.account_id = a.id AND direction = 'credit')
      OR a.balance <> CASE WHEN a.type IN ('asset', 'expense') THEN a.debits - a.credits
                           ELSE a.credits - a.debits END
      OR a.entry_count <> (SELECT count(*) FROM e WHERE e.account_id = a.id)
      OR a.balance <> coalesce((SELECT balance_after FROM e WHERE e.account_id = a.id
                                ORDER BY entry_no DESC LIMIT 1), 0)
      OR (NOT a.allow_negative AND a.balance < 0))) AS bad_accounts,
  (SELECT count(*) FROM {s}.ledger_transactions WHERE tenant_id = $1) AS transactions
"""


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(transaction(), min_size=1, max_size=6))
async def test_accepted_sequences_keep_the_books_balanced(
    book: tuple[Ledger, list[str]], platform: Platform, txns: list[list[tuple[int, str, int]]]
) -> None:
    ledger, ids = book
    t = ledger.tenant.tenant
    sql = INVARIANTS.format(s=f'"{t.schema}"')

    async def check() -> Any:
        async with admin_connection(platform.db, t.server, t.database, as_owner=False) as c:
            return await c.fetchrow(sql, t.id)

    before = (await check())["transactions"]
    accepted = 0
    for txn in txns:
        r = await ledger.post([(ids[i], d, a) for i, d, a in txn], key=uuid.uuid4().hex)
        assert r.status_code in (201, 404, 409, 422), r.text
        accepted += r.status_code == 201
    row = await check()
    assert row["unbalanced_currencies"] == {}
    assert row["bad_accounts"] == 0
    assert row["transactions"] == before + accepted
