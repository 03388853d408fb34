"""``Dispatcher.publish_many``: many events in one outbox statement, delivered like
``publish`` (each once to every subscriber, in the sender's tenant), nothing on rollback."""

from __future__ import annotations

import uuid

import pytest

from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant
from tests.messaging.conftest import effects, eventually
from tests.messaging.probe import Bumped


async def test_publish_many_delivers_each_event_once_to_every_subscriber(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    a = (await make_tenant("schema")).tenant
    keys = [f"many-{transport}-{i}-{uuid.uuid4()}" for i in range(5)]
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            ids = await probed.dispatcher.publish_many(
                uow, [Bumped(key=k, n=i) for i, k in enumerate(keys)]
            )
        # collected on the unit of work, written at its commit
        async with probed.db.unit_of_work() as uow:
            rows = await uow.fetch(
                "SELECT message_id, name, kind, target, payload, headers FROM outbox"
                " WHERE message_id = ANY($1::uuid[]) ORDER BY id",
                ids,
            )
    assert len(set(ids)) == 5
    # one row per event, in the order given, shaped like publish()'s rows
    assert [r["message_id"] for r in rows] == ids
    for i, r in enumerate(rows):
        assert r["name"] == "probe.Bumped.v1"
        assert r["kind"] == "event"
        assert r["target"] is None
        assert r["payload"]["key"] == keys[i]
        assert r["headers"]["tenant_id"] == str(a.id)
        assert r["headers"]["traceparent"].startswith("00-")

    async def all_delivered() -> bool:
        counts = [len(await effects(probed, key=k)) for k in keys]
        return min(counts) >= 2

    await eventually(all_delivered)
    for i, k in enumerate(keys):
        got = await effects(probed, key=k)
        assert sorted(r["consumer"] for r in got) == ["audit", "sink"]
        assert {r["message_id"] for r in got} == {ids[i]}
        assert {r["tenant_seen"] for r in got} == {a.id}
        assert {r["n"] for r in got} == {i}


async def test_publish_many_rolls_back_with_the_unit_of_work(
    probed: Platform, make_tenant: MakeTenant
) -> None:
    a = (await make_tenant("shared")).tenant
    key = f"many-rb-{uuid.uuid4()}"

    async def publish_then_fail() -> None:
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish_many(uow, [Bumped(key=key), Bumped(key=key)])
            raise RuntimeError("rolled back")

    with tenant_scope(a), pytest.raises(RuntimeError):
        await publish_then_fail()
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            assert await probed.dispatcher.publish_many(uow, []) == []
            n = await uow.fetchval("SELECT count(*) FROM outbox WHERE payload->>'key' = $1", key)
    assert n == 0
    assert await effects(probed, key=key) == []
