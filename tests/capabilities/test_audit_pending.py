"""``uow.audit``: records collected on the unit of work, appended at commit to
``audit_pending`` without the chain lock, chained in batches (capabilities/audit/chainer);
reads and verify chain first; tampering with a chained record is still detected."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tenantry.capabilities import audit
from tenantry.capabilities.audit.chainer import AuditChainer
from tenantry.capabilities.audit.log import AuditLog
from tenantry.kernel.db.privileged import admin_connection, tenant_unit_of_work
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import Tenant
from tests.conftest import MakeTenant


def log_of(platform: Platform) -> AuditLog:
    return platform.use(AuditLog)


async def counts(platform: Platform, t: Tenant) -> tuple[int, int]:
    """(pending, chained) records of ``t``."""
    async with tenant_unit_of_work(platform.db, t) as uow:
        pending = await uow.fetchval("SELECT count(*) FROM audit_pending")
        chained = await uow.fetchval("SELECT count(*) FROM audit_events")
    return int(pending), int(chained)


@pytest.mark.parametrize("isolation", ["shared", "schema", "database"])
async def test_collected_records_are_written_at_commit_and_chained_later(
    platform: Platform, make_tenant: MakeTenant, isolation: str
) -> None:
    t = (await make_tenant(isolation)).tenant
    await log_of(platform).chain(t)  # its onboarding's records (tenant.created is pending)
    _, chained_before = await counts(platform, t)
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            uow.audit("test.pending", "x:1", before={"a": 1}, after={"a": 2}, details={"k": "v"})
            uow.audit("test.pending", "x:2")
            assert uow.collected == (0, 2)
        with contextlib.suppress(RuntimeError):
            async with platform.db.unit_of_work() as uow:
                uow.audit("test.rolled-back", "x:3")
                raise RuntimeError("the change fails")
    assert await counts(platform, t) == (2, chained_before)
    assert await log_of(platform).chain(t) == 2
    assert await counts(platform, t) == (0, chained_before + 2)
    rows = await log_of(platform).events(t, before_seq=None, limit=10, action="test.pending")
    assert [r["resource"] for r in rows] == ["x:2", "x:1"]  # newest first, chained in order
    assert rows[1]["before"] == {"a": 1}
    assert rows[1]["details"] == {"k": "v"}
    count, problems = await log_of(platform).verify(t)
    assert problems == []
    assert count == chained_before + 2


async def test_writers_of_one_tenant_do_not_wait_for_each_other(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    """A transaction with its audit records written and not yet committed does not hold
    another writer of the same tenant (the synchronous append, ``audit.record``, does: the
    chain head is locked until commit)."""
    t = (await make_tenant()).tenant
    release = asyncio.Event()

    async def slow() -> None:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                uow.audit("test.slow")
                await uow.write_collected()  # what the commit does, then hold the transaction
                await release.wait()

    async def fast() -> None:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                uow.audit("test.fast")

    holder = asyncio.create_task(slow())
    await asyncio.sleep(0.2)
    await asyncio.wait_for(fast(), 5)  # not blocked by the open transaction
    release.set()
    await holder

    # The synchronous append, for contrast: the head lock makes the second writer wait.
    release.clear()

    async def slow_sync() -> None:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                await audit.record(uow, action="test.slow-sync")
                await release.wait()

    async def fast_sync() -> None:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                await audit.record(uow, action="test.fast-sync")

    holder = asyncio.create_task(slow_sync())
    await asyncio.sleep(0.2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiter := asyncio.ensure_future(fast_sync())), 1)
    release.set()
    await holder
    await waiter
    assert (await log_of(platform).verify(t))[1] == []


async def test_pending_and_synchronous_records_share_one_chain(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant()).tenant

    async def write(i: int) -> None:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                if i % 3 == 0:
                    await audit.record(uow, action="test.sync", resource=f"n:{i}")
                else:
                    uow.audit("test.pending", f"n:{i}", after={"i": i})

    await asyncio.gather(*(write(i) for i in range(30)))
    log = log_of(platform)
    chainers = [AuditLog(platform.db, chain_batch=4) for _ in range(3)]  # small batches
    await asyncio.gather(*(c.chain(t) for c in chainers))
    assert (await counts(platform, t))[0] == 0
    count, problems = await log.verify(t)
    assert problems == []
    resources = {r["resource"] for r in await log.events(t, before_seq=None, limit=100)}
    assert {f"n:{i}" for i in range(30)} <= resources
    assert count >= 30


async def test_tampering_with_a_chained_pending_record_is_detected(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant()).tenant
    with tenant_scope(t):
        for i in range(3):
            async with platform.db.unit_of_work() as uow:
                uow.audit("test.tamper", f"n:{i}", after={"i": i})
    assert (await log_of(platform).verify(t))[1] == []  # chains, then verifies
    async with admin_connection(platform.db, as_owner=False) as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE tenant_shared.audit_events SET after = '{\"i\": 99}' "
            "WHERE tenant_id = $1 AND resource = 'n:1'",
            t.id,
        )
    problems = (await log_of(platform).verify(t))[1]
    assert any("edited" in p for p in problems), problems


async def test_the_chainer_chains_marked_tenants_and_polls_the_others(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    a = (await make_tenant()).tenant
    b = (await make_tenant("schema")).tenant
    for t in (a, b):  # their onboarding's records (tenant.created is pending)
        await log_of(platform).chain(t)
    log = AuditLog(platform.db)
    chainer = AuditChainer(log, platform.catalog.ready, interval=0.05, poll=3600)
    log.on_pending = chainer.mark
    chainer._last_poll = asyncio.get_running_loop().time() + 10**6  # no poll unless asked
    for t in (a, b):
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                uow.audit("test.chainer", "marked" if t is a else "unmarked")
                if t is b:  # written by another process: nothing marks it here
                    await log_of(platform).write(uow, uow._audit)
                    uow._audit.clear()
                else:
                    await log.write(uow, uow._audit)
                    uow._audit.clear()
    assert await chainer.round() == 1
    assert (await counts(platform, a))[0] == 0
    assert (await counts(platform, b))[0] == 1
    assert await chainer.round(everyone=True) >= 1
    assert (await counts(platform, b))[0] == 0
    # a tenant stays marked for a round after its mark (its commit may not have landed)
    chainer.start()
    try:
        await asyncio.sleep(0.3)
        assert a.id not in chainer._marked
    finally:
        await chainer.stop()
