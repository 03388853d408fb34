"""The ledger's hot statements use their indexes under RLS: each is EXPLAINed in a tenant's
unit of work (the app role, RLS forced) with sequential scans disabled, so a Seq Scan in the
plan means no index can serve it under the policy (the RLS pitfall: a predicate the planner
may not push below the policy, e.g. a non-leakproof operator). Checked twice: with the
tenant filter's ``tenant_id = $n`` added, and with RLS's predicate alone (filter switched
off), since either layer must be able to stand alone without turning a lookup into a scan.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import Tenant
from tenantry.testing import MakeTenant
from tenantry_ledger.infrastructure import sql
from tenantry_ledger.infrastructure.sql import LIST_TRANSACTIONS, STATEMENT

A, B = uuid.uuid4(), uuid.uuid4()
NOW = datetime(2026, 12, 1, tzinfo=UTC)

#: Rows of a realistic small tenant: the planner's choices depend on the statistics (on empty
#: tables every index costs the same), so the tenant gets accounts, transactions and entries
#: and the tables are ANALYZEd.
FILL = """
INSERT INTO {s}.ledger_accounts
    (tenant_id, id, code, name, type, currency, allow_negative, created_at)
SELECT $1, CASE g WHEN 1 THEN $2::uuid WHEN 2 THEN $3::uuid ELSE gen_random_uuid() END, 'a' || g,
       'account ' || g, 'asset', 'EUR', true, now() - g * interval '1 hour'
FROM generate_series(1, 200) g;
INSERT INTO {s}.ledger_transactions (tenant_id, id, amount, posted_at)
SELECT $1, gen_random_uuid(), 10, now() - g * interval '1 minute' FROM generate_series(1, 5000) g;
INSERT INTO {s}.ledger_entries (tenant_id, transaction_id, seq, account_id, direction, amount,
    posted_at, entry_no, debits_after, credits_after, balance_after)
SELECT $1, t.id, d.seq, CASE d.seq WHEN 0 THEN $2::uuid ELSE $3::uuid END,
       CASE d.seq WHEN 0 THEN 'debit' ELSE 'credit' END, 10, t.posted_at,
       row_number() OVER (PARTITION BY d.seq ORDER BY t.posted_at), 0, 0, 0
FROM {s}.ledger_transactions t CROSS JOIN (VALUES (0::int2), (1::int2)) d(seq)
WHERE t.tenant_id = $1;
INSERT INTO {s}.ledger_idempotency_keys (tenant_id, key, request_hash, transaction_id, status_code)
SELECT $1, 'k' || g, '\\x00', gen_random_uuid(), 201 FROM generate_series(1, 2000) g;
"""


@pytest.fixture(scope="module")
async def stats_tenant(platform: Platform, make_tenant: MakeTenant) -> Tenant:
    tenant = (await make_tenant()).tenant
    schema = '"' + tenant.schema + '"'
    async with admin_connection(
        platform.db, tenant.server, tenant.database, as_owner=False
    ) as conn:
        for statement in filter(str.strip, FILL.format(s=schema).split(";\n")):
            used = max(int(n) for n in re.findall(r"\$(\d)", statement))
            await conn.execute(statement, *(tenant.id, A, B)[:used])
        for table in ("accounts", "transactions", "entries", "idempotency_keys"):
            await conn.execute(f"ANALYZE {schema}.ledger_{table}")
    return tenant


def _fill(template: str, order_by: str) -> str:
    return template.format(where="true", order_by=order_by, limit="51")


#: (name, SQL, arguments, indexes the plan must use)
HOT: list[tuple[str, str, tuple[Any, ...], set[str]]] = [
    ("balance", sql.BALANCE, (A,), {"ledger_accounts_pkey"}),
    (
        "balance as of",
        sql.BALANCE_AS_OF,
        (A, NOW),
        {"ledger_accounts_pkey", "ledger_entries_tenant_id_account_id_entry_no_key"},
    ),
    (
        "claim and lock",
        sql.CLAIM_AND_LOCK,
        (["k"], [b"h"], [uuid.uuid4()], [A, B]),
        {"ledger_accounts_pkey"},
    ),
    ("stored keys", sql.STORED_KEYS, (["k"],), {"ledger_idempotency_keys_pkey"}),
    (
        "write",
        sql.WRITE,
        (
            NOW,
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [A],
            ["1"],
            ["0"],
            ["1"],
            [1],
            ["k"],
        ),
        {"ledger_accounts_pkey", "ledger_idempotency_keys_pkey"},
    ),
    ("account", sql.GET_ACCOUNT, (A,), {"ledger_accounts_pkey"}),
    (
        "transactions by id",
        sql.TRANSACTIONS_BY_ID,
        ([uuid.uuid4()],),
        {"ledger_transactions_pkey", "ledger_entries_pkey", "ledger_accounts_pkey"},
    ),
    (
        "statement",
        _fill(STATEMENT, "e.entry_no"),
        (A,),
        {"ledger_entries_tenant_id_account_id_entry_no_key", "ledger_transactions_pkey"},
    ),
    (
        "transactions of an account",
        _fill(LIST_TRANSACTIONS, "x.posted_at DESC, x.id DESC"),
        (A, "{}"),
        {"ledger_transactions_posted", "ledger_entries_tenant_id_account_id_entry_no_key"},
    ),
]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize("layers", ["filter and RLS", "RLS alone"])
@pytest.mark.parametrize(("name", "statement", "args", "indexes"), HOT, ids=[h[0] for h in HOT])
async def test_hot_statement_uses_its_indexes_under_rls(
    platform: Platform,
    stats_tenant: Tenant,
    layers: str,
    name: str,
    statement: str,
    args: tuple[Any, ...],
    indexes: set[str],
) -> None:
    tenant = stats_tenant
    off: AbstractContextManager[None] = (
        tenant_filter.switched_off() if layers == "RLS alone" else nullcontext()
    )
    with tenant_scope(tenant), off:
        async with platform.db.unit_of_work() as uow:
            await uow.execute("SET LOCAL enable_seqscan = off")
            raw = await uow.fetchval("EXPLAIN (FORMAT JSON) " + statement, *args)
    plan = (orjson.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes = list(_nodes(plan))
    scans = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name", "")]
    assert not scans, f"{name}: sequential scan of {[n['Relation Name'] for n in scans]}"
    used = {n["Index Name"] for n in nodes if "Index Name" in n}
    assert indexes <= used, f"{name}: uses {sorted(used)}, expected {sorted(indexes)}: {raw}"
    # The policy's predicate is an index condition, not a filter applied after the fetch.
    for n in nodes:
        if n.get("Relation Name", "").startswith("ledger_") and "Index Name" in n:
            assert "tenant_id" in n.get("Index Cond", ""), f"{name}: {n['Index Name']}: {n}"
