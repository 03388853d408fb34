"""The unit of work opens its transaction and sets the tenant in one round trip
(``uow.begin_sql``, a simple-query script): these prove it keeps the guarantees of
``conn.transaction()`` + a settings statement (rollback on exception, savepoints, no tenant
left on a pooled connection) and that the values written into that script are quoted.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import platform_unit_of_work_as
from tenantry.kernel.db.uow import UnitOfWork, begin_sql, quote_ident, quote_literal
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant, TenantFixture


class Boom(Exception):
    pass


@pytest.fixture
async def one_conn_db(platform: Platform) -> AsyncIterator[Database]:
    """A Database whose main pool has exactly one connection (the platform's pool settings),
    so every unit of work reuses the connection the previous one left behind."""
    db = Database(platform.db.settings, platform.db.admin_url)
    pool = await db.new_pool("default", None, min_size=1, max_size=1)
    db._pools[("default", db.main_database)] = pool
    try:
        yield db
    finally:
        await db.close()


async def assert_clean(db: Database) -> None:
    """The pooled connection carries no tenant, no scope and no open transaction."""
    pool = await db.pool()
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        row = await conn.fetchrow(
            "SELECT current_setting('app.tenant_id', true) AS t,"
            " current_setting('app.scope', true) AS s"
        )
        assert row is not None
        assert row["t"] in ("", None)
        assert row["s"] in ("", None)


async def test_begin_sql_sets_everything_in_one_script() -> None:
    tid = uuid.UUID("0b0e4f5c-8f57-4a35-9c1c-3c2f7b1ad0d1")
    sql = begin_sql(tid, "tenant_shared", readonly=True, isolation="repeatable_read")
    assert sql.startswith("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT ")
    assert f"set_config('app.tenant_id', '{tid}', true)" in sql
    assert """set_config('search_path', '"tenant_shared"', true)""" in sql
    assert "set_config('app.scope', 'tenant', true)" in sql
    platform_sql = begin_sql(None, "tenantry")
    assert platform_sql.startswith("BEGIN; SELECT ")
    assert "set_config('app.tenant_id', '', true)" in platform_sql
    assert "set_config('app.scope', 'platform', true)" in platform_sql


async def test_begin_sql_refuses_what_it_cannot_quote() -> None:
    with pytest.raises(TypeError):
        begin_sql("0b0e4f5c-8f57-4a35-9c1c-3c2f7b1ad0d1'; DROP TABLE x; --", "s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backslash"):
        begin_sql(uuid.uuid4(), "a\\'b")
    assert quote_ident('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"


async def test_hostile_schema_name_stays_a_value(platform: Platform) -> None:
    """A schema name full of quotes ends up as the search_path value, nothing else runs."""
    weird = "x'); SELECT pg_sleep(10); --\"y"
    conn = await asyncpg.connect(platform.db.app_dsn())
    try:
        await conn.execute(begin_sql(uuid.uuid4(), weird))
        assert await conn.fetchval("SELECT current_setting('search_path')") == quote_ident(weird)
        await conn.execute("ROLLBACK")
    finally:
        await conn.close()


async def test_settings_are_transaction_local_and_visible(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a = await make_tenant("schema")
    with tenant_scope(a.tenant):
        async with one_conn_db.unit_of_work() as uow:
            row = await uow.fetchrow(
                "SELECT current_setting('app.tenant_id') AS t, current_setting('app.scope') AS s,"
                " current_schemas(false) AS p"
            )
            assert row is not None
            assert row["t"] == str(a.tenant.id)
            assert row["s"] == "tenant"
            assert row["p"][0] == a.tenant.schema
            assert await uow.fetchval("SELECT count(*) FROM roles") > 0
    await assert_clean(one_conn_db)


async def test_exception_rolls_back_and_leaves_no_tenant(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a: TenantFixture = await make_tenant()
    name = f"uow-rollback-{uuid.uuid4().hex[:8]}"

    async def insert_then_fail() -> None:
        async with one_conn_db.unit_of_work() as uow:
            await uow.execute(
                "INSERT INTO roles (tenant_id, name) VALUES ($1, $2)", uow.tenant_id, name
            )
            raise Boom

    with tenant_scope(a.tenant), pytest.raises(Boom):
        await insert_then_fail()
    await assert_clean(one_conn_db)
    with tenant_scope(a.tenant):
        async with one_conn_db.unit_of_work(readonly=True) as uow:
            assert await uow.fetchval("SELECT count(*) FROM roles WHERE name = $1", name) == 0


async def test_database_error_rolls_back_and_next_unit_of_work_is_clean(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a = await make_tenant()
    with tenant_scope(a.tenant):
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with one_conn_db.unit_of_work() as uow:
                await uow.fetchval("SELECT 1 / 0")
        async with one_conn_db.unit_of_work() as uow:  # same connection, usable, tenant set
            assert await uow.fetchval("SELECT current_setting('app.tenant_id')") == str(a.tenant.id)


async def test_commit_persists(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a = await make_tenant()
    name = f"uow-commit-{uuid.uuid4().hex[:8]}"
    with tenant_scope(a.tenant):
        async with one_conn_db.unit_of_work() as uow:
            await uow.execute(
                "INSERT INTO roles (tenant_id, name) VALUES ($1, $2)", uow.tenant_id, name
            )
        async with one_conn_db.unit_of_work(readonly=True) as uow:
            assert await uow.fetchval("SELECT count(*) FROM roles WHERE name = $1", name) == 1


async def test_readonly_and_isolation_are_applied(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a = await make_tenant()
    with tenant_scope(a.tenant):
        async with one_conn_db.unit_of_work(readonly=True, isolation="repeatable_read") as uow:
            assert await uow.fetchval("SHOW transaction_read_only") == "on"
            assert await uow.fetchval("SHOW transaction_isolation") == "repeatable read"
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await uow.execute(
                    "INSERT INTO roles (tenant_id, name) VALUES ($1, 'ro')", a.tenant.id
                )


async def test_savepoints_roll_back_alone_and_nest(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a = await make_tenant()
    tag = uuid.uuid4().hex[:8]
    insert = "INSERT INTO roles (tenant_id, name) VALUES ($1, $2)"

    async def duplicate(uow: UnitOfWork) -> None:
        async with uow.savepoint():
            await uow.execute(insert, uow.tenant_id, f"gone-{tag}")
            await uow.execute(insert, uow.tenant_id, f"keep-{tag}")  # duplicate key

    async def inner_fails(uow: UnitOfWork) -> None:
        async with uow.savepoint():
            await uow.execute(insert, uow.tenant_id, f"inner-{tag}")
            raise Boom

    with tenant_scope(a.tenant):
        async with one_conn_db.unit_of_work() as uow:
            await uow.execute(insert, uow.tenant_id, f"keep-{tag}")
            with pytest.raises(asyncpg.UniqueViolationError):
                await duplicate(uow)
            async with uow.savepoint():
                await uow.execute(insert, uow.tenant_id, f"outer-{tag}")
                with pytest.raises(Boom):
                    await inner_fails(uow)
            # still in a usable transaction, with the tenant set
            assert await uow.fetchval("SELECT current_setting('app.tenant_id')") == str(a.tenant.id)
        async with one_conn_db.unit_of_work(readonly=True) as uow:
            names = {
                r["name"]
                for r in await uow.fetch("SELECT name FROM roles WHERE name LIKE $1", f"%-{tag}")
            }
    assert names == {f"keep-{tag}", f"outer-{tag}"}


async def test_platform_unit_of_work_scopes(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    a = await make_tenant()
    async with one_conn_db.platform_unit_of_work() as uow:
        assert await uow.fetchval("SELECT current_setting('app.scope')") == "platform"
        assert await uow.fetchval("SELECT current_setting('app.tenant_id')") == ""
    async with platform_unit_of_work_as(one_conn_db, a.tenant) as uow:
        assert await uow.fetchval("SELECT current_setting('app.scope')") == "tenant"
        assert await uow.fetchval("SELECT current_setting('app.tenant_id')") == str(a.tenant.id)
    await assert_clean(one_conn_db)


async def test_cancelled_unit_of_work_leaves_a_clean_connection(
    platform: Platform, make_tenant: MakeTenant, one_conn_db: Database
) -> None:
    """A request cancelled mid-statement (client gone, timeout): the transaction is rolled
    back and the pooled connection comes back usable, without a tenant."""
    import asyncio

    a = await make_tenant()
    name = f"uow-cancel-{uuid.uuid4().hex[:8]}"

    async def slow() -> None:
        with tenant_scope(a.tenant):
            async with one_conn_db.unit_of_work() as uow:
                await uow.execute(
                    "INSERT INTO roles (tenant_id, name) VALUES ($1, $2)", uow.tenant_id, name
                )
                await uow.execute("SELECT pg_sleep(5)")

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_clean(one_conn_db)
    with tenant_scope(a.tenant):
        async with one_conn_db.unit_of_work(readonly=True) as uow:
            assert await uow.fetchval("SELECT count(*) FROM roles WHERE name = $1", name) == 0
