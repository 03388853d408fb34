"""The relay runs in-process consumers in its claim transaction, each consumer's batch in a
savepoint: one consumer failing does not undo (and so does not repeat) another's work."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.messaging.routing import Routes, Transport
from tenantry.kernel.observability import metrics
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant
from tests.messaging.conftest import effects, eventually
from tests.messaging.probe import INSERT_EFFECT


class Fanned(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "probe.Fanned.v1"
    key: str


#: What a handler did outside the database (a mail sent, a webhook called), per key.
SENT: Counter[str] = Counter()
#: How many times the failing consumer was called, per key.
CALLS: Counter[str] = Counter()


def register(platform: Platform) -> None:
    if Fanned.message_name in platform.dispatcher.types:
        return

    async def mailer(uow: UnitOfWork, ev: Fanned, ctx: MessageContext) -> None:
        SENT[ev.key] += 1  # the external effect, not undone by a rollback

    async def flaky(uow: UnitOfWork, ev: Fanned, ctx: MessageContext) -> None:
        CALLS[ev.key] += 1
        await uow.execute(
            INSERT_EFFECT, uow.tenant_id, ctx.consumer, ctx.message_id, ev.key, 1, "", "", "", None
        )
        if CALLS[ev.key] == 1:
            raise RuntimeError("first delivery fails")

    platform.dispatcher.subscribe("sink", Fanned, mailer)
    platform.dispatcher.subscribe("audit", Fanned, flaky)


async def test_a_failing_consumer_does_not_repeat_another_consumers_effects(
    probed: Platform, make_tenant: MakeTenant
) -> None:
    register(probed)
    routes = probed.dispatcher.routes
    saved = dict(routes.edges)
    routes.edges[("probe", "sink")] = Transport.INPROC
    routes.edges[("probe", "audit")] = Transport.INPROC
    try:
        a = (await make_tenant()).tenant
        key = f"fanned-{uuid.uuid4()}"
        with tenant_scope(a):
            async with probed.db.unit_of_work() as uow:
                await probed.dispatcher.publish(uow, Fanned(key=key))

        async def flaky_done() -> bool:
            return len(await effects(probed, key=key)) == 1

        await eventually(flaky_done, within=15)
        assert CALLS[key] == 2  # failed once, retried once
        assert SENT[key] == 1  # the other consumer's effect was not repeated
        (row,) = await effects(probed, key=key)
        assert row["consumer"] == "audit"
        assert row["tenant_seen"] == a.id
    finally:
        probed.dispatcher.routes = Routes(saved)


async def test_outbox_gauges_show_depth_and_age_of_undelivered_messages(
    probed: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant("schema")).tenant
    relay = probed.messaging.relay
    store = f"{t.server}/{t.database or 'main'}"

    async def drained() -> bool:
        # The tenant's own onboarding events may still be on their way when the machine is
        # busy: start from an empty outbox so the depth counts only this test's messages.
        return (await relay.measure([t]))[store][0] == 0

    await eventually(drained, within=30)
    with tenant_scope(t):
        async with probed.db.unit_of_work() as uow:
            # Two messages the relay will not take yet (due in an hour), one minute old.
            for _ in range(2):
                await uow.execute(
                    "INSERT INTO outbox (tenant_id, message_id, name, payload, headers,"
                    " available_at, created_at) VALUES ($1, gen_random_uuid(), 'probe.Later.v1',"
                    " '{}', '{}', now() + interval '1 hour', now() - interval '1 minute')",
                    t.id,
                )
    try:
        depth, lag = (await relay.measure([t]))[store]
        assert depth == 2
        assert 59 <= lag < 600
        assert metrics.REGISTRY.get_sample_value("tenantry_outbox_depth", {"store": store}) == 2
        assert metrics.REGISTRY.get_sample_value(
            "tenantry_outbox_lag_seconds", {"store": store}
        ) == pytest.approx(lag, abs=5)
    finally:
        with tenant_scope(t):
            async with probed.db.unit_of_work() as uow:
                await uow.execute("DELETE FROM outbox WHERE name = 'probe.Later.v1'")
    assert (await relay.measure([t]))[store] == (0, 0.0)
