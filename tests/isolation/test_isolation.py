"""Cross-tenant isolation, proven for each layer alone.

For every pair of isolation modes and every tenant-owned table (discovered from the database
catalog, not listed by hand), tenant B runs raw SQL through its own unit of work against
tenant A's rows and ids: it can neither read, list, update, delete, nor insert rows as A,
nor move its own rows to A. The tests taking ``layers`` run three ways (tests/isolation/
conftest.py): both layers, the tenant filter alone (RLS dropped in a throwaway database),
RLS alone (the filter switched off); a control shows the attack finds leaks with both off.
A transaction without tenant context sees nothing and a pooled connection carries no tenant
into its next transaction: those two are RLS's alone (raw connections, no unit of work).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.privileged import (
    admin_connection,
    platform_unit_of_work_as,
    tenant_unit_of_work,
)
from tenantry.kernel.db.rls import TableState, tenant_tables
from tenantry.kernel.db.tenant_filter import TenantFilterError
from tenantry.kernel.db.uow import PLATFORM_SCHEMA, UnitOfWork
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import Tenant
from tests.conftest import MakeTenant, TenantFixture
from tests.isolation.conftest import MODES, Layers
from tests.isolation.seeding import seed_all

PAIRS = [
    ("shared", "shared"),
    ("shared", "schema"),
    ("schema", "shared"),
    ("schema", "database"),
    ("database", "schema"),
    ("shared", "database"),
]


def q(t: TableState) -> str:
    return f'"{t.schema}"."{t.table}"'


async def tables_of(platform: Platform, tenant: Tenant) -> list[TableState]:
    """Tenant-owned tables of the tenant's store, plus those of the platform schema."""
    async with admin_connection(platform.db, tenant.server, tenant.database, as_owner=False) as c:
        store = await tenant_tables(c, [tenant.schema])
    async with admin_connection(platform.db, as_owner=False) as c:
        plat = await tenant_tables(c, [PLATFORM_SCHEMA])
    return store + plat


async def rows_of(platform: Platform, tenant: Tenant, t: TableState) -> list[dict[str, Any]]:
    """Tenant's rows of a table, read as the superuser (no RLS), as JSON objects."""
    database = None if t.schema == PLATFORM_SCHEMA else tenant.database
    server = "default" if t.schema == PLATFORM_SCHEMA else tenant.server
    async with admin_connection(platform.db, server, database, as_owner=False) as c:
        rows = await c.fetch(
            f"SELECT to_jsonb(x) AS j FROM {q(t)} x WHERE tenant_id = $1", tenant.id
        )
    return [r["j"] for r in rows]


@contextlib.asynccontextmanager
async def as_tenant(platform: Platform, tenant: Tenant, t: TableState) -> AsyncIterator[UnitOfWork]:
    """B's unit of work for the store that holds ``t`` (platform tables: main database)."""
    if t.schema == PLATFORM_SCHEMA:
        async with platform_unit_of_work_as(platform.db, tenant) as uow:
            yield uow
    else:
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            yield uow


#: A store B's connection cannot even name: isolated by construction.
UNREACHABLE = (
    asyncpg.UndefinedTableError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.InsufficientPrivilegeError,
)
#: A write refused by a layer: RLS's WITH CHECK (InsufficientPrivilege), the tenant filter's
#: guard on a hand-written tenant_id (NULL into NOT NULL), or the filter refusing the text.
REFUSED = (asyncpg.InsufficientPrivilegeError, asyncpg.NotNullViolationError, TenantFilterError)


class _Undo(Exception):
    """Raised inside a probe's unit of work so that nothing an attack does is committed."""

    def __init__(self, result: Any) -> None:
        self.result = result


async def attack(
    platform: Platform, victim: Tenant, attacker: Tenant, t: TableState, sample: dict[str, Any]
) -> list[str]:
    """Everything B tries against A's table and rows with raw SQL through B's own unit of
    work; returns the leaks found (empty: isolated). Each probe runs in a unit of work of its
    own that is rolled back, so a leak found leaves nothing behind."""
    where = f"{t.qualified} ({victim.isolation} victim, {attacker.isolation} attacker)"
    leaks: list[str] = []

    async def probe(name: str, sql: str, *args: Any, fetch: bool = False) -> Any:
        try:
            async with as_tenant(platform, attacker, t) as uow:
                result = await (uow.fetchval(sql, *args) if fetch else uow.execute(sql, *args))
                raise _Undo(result)
        except _Undo as done:
            return done.result
        except UNREACHABLE:
            return None
        except REFUSED:
            return "refused"
        except Exception as exc:
            leaks.append(f"{name}: not stopped by isolation but by {exc!r}: {where}")
            return "error"

    read = await probe(
        "read", f"SELECT count(*) FROM {q(t)} WHERE tenant_id = $1", victim.id, fetch=True
    )
    if read not in (0, None, "refused", "error"):
        leaks.append(f"read: {read} rows of A: {where}")
    listed = await probe(
        "list", f"SELECT count(*) FROM {q(t)} WHERE tenant_id <> $1", attacker.id, fetch=True
    )
    if listed not in (0, None, "refused", "error"):
        leaks.append(f"list: {listed} rows of others: {where}")
    status = await probe(
        "update",
        f"UPDATE {q(t)} SET tenant_id = tenant_id WHERE tenant_id = $1",
        victim.id,
    )
    if status not in ("UPDATE 0", None, "refused", "error"):
        leaks.append(f"update: {status} of A's rows: {where}")
    # B moving its own rows to A: must be refused (RLS WITH CHECK, or the filter's guard).
    status = await probe("move", f"UPDATE {q(t)} SET tenant_id = $1", victim.id)
    if status not in ("UPDATE 0", None, "refused", "error"):
        leaks.append(f"move: {status} of B's rows given to A: {where}")
    status = await probe("delete", f"DELETE FROM {q(t)} WHERE tenant_id = $1", victim.id)
    if status not in ("DELETE 0", None, "refused", "error"):
        leaks.append(f"delete: {status} of A's rows: {where}")
    # Insert a row claiming to be A's (a copy of A's row, every column named): refused.
    cols = ", ".join(f'"{c}"' for c in sample)
    status = await probe(
        "insert",
        f"INSERT INTO {q(t)} ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{q(t)}, $1)",
        sample,
    )
    if status not in (None, "refused", "error"):
        leaks.append(f"insert: {status} as A: {where}")
    return leaks


#: Every pair with both layers; the single-layer runs leave out the pairs with a
#: database-mode tenant: its store is another database, which the other tenant's connections
#: cannot name, so it is isolated by construction, not by either layer (and each holds
#: connections of its own).
LAYER_PAIRS = [
    (layer, a, b)
    for layer in MODES
    for (a, b) in PAIRS
    if layer == "both" or "database" not in (a, b)
]


@pytest.mark.parametrize(("layers", "mode_a", "mode_b"), LAYER_PAIRS, indirect=["layers"])
async def test_tenant_b_cannot_touch_tenant_a(layers: Layers, mode_a: str, mode_b: str) -> None:
    platform = layers.platform
    a: TenantFixture = await layers.make_tenant(mode_a)
    b: TenantFixture = await layers.make_tenant(mode_b)
    await seed_all(layers.client, a)
    await seed_all(layers.client, b)
    await layers.isolate()
    tables = await tables_of(platform, a.tenant)
    assert tables, "no tenant-owned tables discovered"
    leaks: list[str] = []
    for t in tables:
        if layers.rls:
            assert t.safe, f"{t.qualified} lacks RLS (enabled/forced/policies)"
        else:  # the layer is really gone
            assert not t.enabled, f"{t.qualified} still has RLS enabled"
            assert not t.has_policy, f"{t.qualified} still has its policy"
        rows = await rows_of(platform, a.tenant, t)
        if t.partition and not rows:
            continue  # an empty (default or future) partition: its parent's rows are tested
        assert rows, (
            f"no rows of tenant A in {t.qualified}: add a seeder "
            "(tests/isolation/seed_<module>.py) that fills it"
        )
        leaks += await attack(platform, a.tenant, b.tenant, t, rows[0])
        # B still sees its own rows: the layers isolate, they do not just deny everything.
        own = (
            t
            if t.schema == PLATFORM_SCHEMA
            else TableState(b.tenant.schema, t.table, True, True, "", True, True)
        )
        async with as_tenant(platform, b.tenant, own) as uow:
            assert await uow.fetchval(f"SELECT count(*) FROM {q(own)}") >= 1, own.qualified
    assert not leaks, "\n".join(leaks)


async def test_attack_sees_leaks_with_both_layers_off(norls: Layers) -> None:
    """The control: RLS dropped AND the filter off, the same attack must find leaks of
    every kind, so the single-layer runs above cannot pass because the attack is blind."""
    a = await norls.make_tenant("shared")
    b = await norls.make_tenant("shared")
    await seed_all(norls.client, a)
    await seed_all(norls.client, b)
    await norls.isolate()
    kinds: set[str] = set()
    with tenant_filter.switched_off():
        for t in await tables_of(norls.platform, a.tenant):
            if t.table not in ("roles", "ledger_accounts", "memberships"):
                continue
            assert not t.enabled
            rows = await rows_of(norls.platform, a.tenant, t)
            leaks = await attack(norls.platform, a.tenant, b.tenant, t, rows[0])
            kinds |= {leak.split(":")[0] for leak in leaks}
    assert kinds >= {"read", "list", "update", "move", "delete", "insert"}, kinds


async def test_insert_as_another_tenant_is_refused(layers: Layers) -> None:
    a = await layers.make_tenant()
    b = await layers.make_tenant()
    await layers.isolate()
    refused: type[Exception] = {
        "both": asyncpg.InsufficientPrivilegeError,  # RLS checks the row the guard nulled
        "rls_only": asyncpg.InsufficientPrivilegeError,
        "filter_only": asyncpg.NotNullViolationError,  # the filter's guard on tenant_id
    }[layers.mode]
    async with tenant_unit_of_work(layers.platform.db, b.tenant) as uow:
        with pytest.raises(refused):
            await uow.execute("INSERT INTO roles (tenant_id, name) VALUES ($1, 'x')", a.tenant.id)


async def test_no_tenant_context_sees_nothing(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    await seed_all(client, a)
    conn = await asyncpg.connect(platform.db.app_dsn())
    try:
        for t in await tables_of(platform, a.tenant):
            if t.schema != a.tenant.schema and t.schema != PLATFORM_SCHEMA:
                continue
            assert await conn.fetchval(f"SELECT count(*) FROM {q(t)}") == 0, t.qualified
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                'INSERT INTO "tenant_shared".roles (tenant_id, name) VALUES ($1, $2)',
                a.tenant.id,
                "sneaky",
            )
    finally:
        await conn.close()


async def test_pooled_connection_carries_no_tenant(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    # The platform's own pool configuration (no session reset on release), one connection.
    pool = await platform.db.new_pool("default", None, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(UnitOfWork.SET_TENANT, str(a.tenant.id), a.tenant.schema)
            assert await conn.fetchval("SELECT count(*) FROM roles") > 0
        async with pool.acquire() as conn:  # the same (only) connection
            assert (await conn.fetchval("SELECT current_setting('app.tenant_id', true)")) in (
                "",
                None,
            )
            assert await conn.fetchval('SELECT count(*) FROM "tenant_shared".roles') == 0
    finally:
        await pool.close()


async def test_concurrent_tenants_never_mix(layers: Layers) -> None:
    from tenantry.kernel.tenancy.context import tenant_scope

    platform = layers.platform
    modes = ("shared", "shared", "schema", "database" if layers.mode == "both" else "schema")
    tenants = [await layers.make_tenant(m) for m in modes]
    await layers.isolate()

    async def probe(t: Tenant) -> set[Any]:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                await asyncio.sleep(0)
                return {r[0] for r in await uow.fetch("SELECT DISTINCT tenant_id FROM roles")}

    jobs = [tenants[i % 4].tenant for i in range(120)]
    results = await asyncio.gather(*(probe(t) for t in jobs))
    for t, seen in zip(jobs, results, strict=True):
        assert seen == {t.id}


async def test_unit_of_work_without_tenant_fails_loudly(platform: Platform) -> None:
    from tenantry.kernel.errors import NoTenantContext

    with pytest.raises(NoTenantContext):
        async with platform.db.unit_of_work():
            pass


async def test_foreign_keys_between_tenant_tables_include_tenant_id(platform: Platform) -> None:
    """RI checks bypass RLS, so a foreign key between tenant-owned tables must carry tenant_id
    (composite key): otherwise B could reference A's row by id."""
    sql = """
    SELECT c.conrelid::regclass::text AS tbl, c.conname,
           array(SELECT a.attname FROM pg_attribute a
                 WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS cols
    FROM pg_constraint c
    WHERE c.contype = 'f'
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.confrelid
                  AND a.attname = 'tenant_id' AND NOT a.attisdropped)
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.conrelid
                  AND a.attname = 'tenant_id' AND NOT a.attisdropped)
    """
    async with admin_connection(platform.db, as_owner=False) as conn:
        bad = [r for r in await conn.fetch(sql) if "tenant_id" not in r["cols"]]
    assert not bad, [f"{r['tbl']}.{r['conname']}" for r in bad]
