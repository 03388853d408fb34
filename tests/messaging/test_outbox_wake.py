"""The relays' wake-up after the COMMIT, and a change that carries its collected rows.

Before: every unit of work that published ran ``pg_notify`` in its commit's statement, so
every COMMIT took PostgreSQL's notification-queue lock (one at a time, across every tenant
and process), and twenty commits sent twenty notifications. Now the unit of work tells the
outbox after its COMMIT (kernel/db/commit, kernel/messaging/outbox.OutboxWake): this
process's relays at once by a callback, other processes' by one NOTIFY per database per
interval. And ``uow.execute_with_collected`` lets a service's last write carry the outbox
rows and audit records (kernel/db/commit.join): no statement left for the commit.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from tenantry.kernel.db.commit import join
from tenantry.kernel.db.privileged import admin_dsn, tenant_unit_of_work
from tenantry.kernel.messaging.outbox import CHANNEL, Outbox
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant
from tests.messaging.probe import Bumped, outbox_ids


def outbox_of(platform: Platform) -> Outbox:
    outbox = platform.db.commit_writers.outbox
    assert isinstance(outbox, Outbox)
    return outbox


async def test_commits_notify_after_commit_coalesced_per_interval(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenant = (await make_tenant()).tenant
    wake = outbox_of(platform).wake
    got: list[str] = []
    listener = await asyncpg.connect(admin_dsn(platform.db))
    await listener.add_listener(CHANNEL, lambda *a: got.append(str(a[3])))
    interval, wake.interval_s = wake.interval_s, 0.3
    try:
        for i in range(20):
            async with tenant_unit_of_work(platform.db, tenant) as uow:
                uow.publish(Bumped(key=f"wake-{i}", n=i))
        await asyncio.sleep(0.8)
    finally:
        wake.interval_s = interval
        await listener.close()
    mine = [p for p in got if p == str(tenant.id)]
    # one NOTIFY per interval, not one per commit (before: 20)
    assert 1 <= len(mine) <= 4, got


async def test_this_process_is_woken_at_once_and_never_by_a_rollback(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenant = (await make_tenant()).tenant
    wake = outbox_of(platform).wake
    woken: list[uuid.UUID] = []
    wake.local.append(woken.append)
    try:
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            uow.publish(Bumped(key="local", n=1))
            assert woken == []  # not before the COMMIT
        assert woken == [tenant.id]  # right after it, with no SQL

        async def rolled_back() -> None:
            async with tenant_unit_of_work(platform.db, tenant) as uow:
                uow.publish(Bumped(key="rolled-back", n=2))
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            await rolled_back()
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            uow.audit("test.no-outbox")  # no outbox rows: nothing to wake
        assert woken == [tenant.id]
    finally:
        wake.local.remove(woken.append)


async def test_a_change_carries_its_outbox_rows_and_audit_records(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenant = (await make_tenant()).tenant
    seen: list[str] = []

    def log(record: Any) -> None:
        seen.append(record.query)

    change = "WITH c AS (SELECT $1::int AS n) SELECT 1"
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        proxy: Any = uow._conn
        conn: Any = proxy._con  # the pooled connection itself (the proxy is released)
        conn.add_query_logger(log)
        mid = uow.publish(Bumped(key="carried", n=1))
        uow.audit("test.carried")
        await uow.execute_with_collected(change, 7)
        assert uow.collected == (0, 0)
    conn.remove_query_logger(log)
    statements = [q for q in seen if q not in ("COMMIT", "ROLLBACK")]
    assert len(statements) == 1, seen  # the change, its message and its record: one
    assert "outbox" in statements[0]
    assert "audit_pending" in statements[0]
    assert await outbox_ids(platform, tenant, [mid]) == {mid}
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        assert (
            await uow.fetchval("SELECT count(*) FROM audit_pending WHERE action = 'test.carried'")
            + await uow.fetchval("SELECT count(*) FROM audit_events WHERE action = 'test.carried'")
            == 1
        )


async def test_a_carried_change_rolled_back_leaves_no_message(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenant = (await make_tenant()).tenant
    ids: list[uuid.UUID] = []

    async def rolled_back() -> None:
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            ids.append(uow.publish(Bumped(key="carried-rb", n=1)))
            await uow.execute_with_collected("WITH c AS (SELECT 1) SELECT 1")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    assert await outbox_ids(platform, tenant, ids) == set()


def test_join_renumbers_the_parts_and_refuses_another_shape() -> None:
    from tenantry.kernel.db.commit import Part

    text, args = join(
        "WITH a AS (SELECT $1 AS x, $2 AS y) SELECT 1",
        ["x", "y"],
        [Part("INSERT INTO t (v) SELECT $1", (3,)), Part("INSERT INTO u (v) VALUES ($1)", (4,))],
    )
    assert text == (
        "WITH a AS (SELECT $1 AS x, $2 AS y), collected_0 AS (INSERT INTO t (v) SELECT $3),"
        " collected_1 AS (INSERT INTO u (v) VALUES ($4)) SELECT 1"
    )
    assert args == ["x", "y", 3, 4]
    with pytest.raises(ValueError, match=r"WITH \.\.\. SELECT 1"):
        join("UPDATE t SET v = 1", [], [Part("INSERT INTO u (v) VALUES ($1)", (4,))])
