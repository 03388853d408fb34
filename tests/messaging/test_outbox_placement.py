"""One path to the outbox (kernel/messaging/outbox, kernel/db/commit.tenant_store): whatever
the call (``publish``, ``publish_many``, ``uow.publish``) and whatever the unit of work (the
tenant's own, or a platform unit of work seen as the tenant), the rows land in the outbox of
the tenant's store, shared, schema or database, and a savepoint rolled back takes its
messages with it.

Before the one path, ``publish_many`` on a platform unit of work wrote to the platform
schema's search_path (``tenantry``): no outbox there, so it failed for every isolation mode,
where ``publish`` placed the row in the tenant's store (the decision was copied in the
dispatcher and in audit, and missing from ``publish_many``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tenantry.kernel.db.privileged import platform_unit_of_work_as, tenant_unit_of_work
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant
from tests.messaging.probe import Bumped, outbox_ids

MODES = ["shared", "schema", "database"]


@pytest.mark.parametrize("mode", MODES)
async def test_publish_many_from_a_platform_unit_of_work_lands_in_the_tenants_store(
    platform: Platform, make_tenant: MakeTenant, mode: str
) -> None:
    tenant = (await make_tenant(mode)).tenant
    events = [Bumped(key=f"place-many-{mode}-{i}-{uuid.uuid4()}", n=i) for i in range(3)]
    async with platform_unit_of_work_as(platform.db, tenant) as uow:
        ids = await platform.dispatcher.publish_many(uow, events)
        one = await platform.dispatcher.publish(uow, Bumped(key=f"place-one-{mode}", n=9))
        own = uow.publish(Bumped(key=f"place-uow-{mode}", n=10))
    assert await outbox_ids(platform, tenant, [*ids, one, own]) == {*ids, one, own}


@pytest.mark.parametrize("mode", MODES)
async def test_messages_of_a_rolled_back_savepoint_are_not_written(
    platform: Platform, make_tenant: MakeTenant, mode: str
) -> None:
    tenant = (await make_tenant(mode)).tenant
    dropped: list[uuid.UUID] = []

    async def in_savepoint(uow: UnitOfWork) -> None:
        async with uow.savepoint():
            dropped.append(uow.publish(Bumped(key=f"sp-dropped-{mode}", n=2)))
            uow.audit("test.savepoint.dropped")
            raise RuntimeError("roll the savepoint back")

    async with tenant_unit_of_work(platform.db, tenant) as uow:
        kept = uow.publish(Bumped(key=f"sp-kept-{mode}", n=1))
        with pytest.raises(RuntimeError):
            await in_savepoint(uow)
        assert uow.collected == (1, 0)
    assert await outbox_ids(platform, tenant, [kept, *dropped]) == {kept}


async def test_a_rolled_back_unit_of_work_writes_nothing(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenant = (await make_tenant()).tenant
    ids: list[uuid.UUID] = []

    async def rolled_back() -> None:
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            ids.append(uow.publish(Bumped(key="rb", n=1)))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    assert await outbox_ids(platform, tenant, ids) == set()


async def test_outbox_rows_and_audit_records_are_one_statement_at_commit(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenant = (await make_tenant()).tenant
    seen: list[str] = []

    def log(record: Any) -> None:
        seen.append(record.query)

    async with tenant_unit_of_work(platform.db, tenant) as uow:
        conn: Any = uow._conn
        conn.add_query_logger(log)
        mid = uow.publish(Bumped(key="one-statement", n=1))
        uow.audit("test.one-statement")
        await uow.write_collected()
        conn.remove_query_logger(log)
    writes = [q for q in seen if "outbox" in q or "audit_pending" in q]
    assert len(writes) == 1, seen
    assert "audit_pending" in writes[0]
    assert await outbox_ids(platform, tenant, [mid]) == {mid}
