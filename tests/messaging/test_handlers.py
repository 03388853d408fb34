"""The same handler suite, once with every probe edge in-process and once over RabbitMQ."""

from __future__ import annotations

import uuid

import pytest

from tenantry.kernel.errors import ConfigError
from tenantry.kernel.messaging import dead
from tenantry.kernel.messaging.routing import Routes, Transport
from tenantry.kernel.observability import logs, metrics
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant
from tests.messaging.conftest import effects, eventually
from tests.messaging.probe import Add, Bumped, Poison, Sum


async def test_published_event_reaches_every_subscriber_once_in_sender_tenant(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    a = (await make_tenant("shared")).tenant
    key = f"{transport}-{uuid.uuid4()}"
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            mid = await probed.dispatcher.publish(uow, Bumped(key=key, n=3))

    async def both() -> bool:
        return len(await effects(probed, key=key)) >= 2

    await eventually(both)
    rows = await effects(probed, key=key)
    assert sorted(r["consumer"] for r in rows) == ["audit", "sink"]
    for r in rows:
        assert r["message_id"] == mid
        assert r["tenant_id"] == a.id
        assert r["tenant_seen"] == a.id
        assert r["n"] == 3
        assert r["traceparent"].startswith("00-")
        assert len(r["traceparent"]) == 55
        assert r["causation_id"] is None
        assert r["correlation_id"]


async def test_rollback_publishes_nothing(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    a = (await make_tenant("schema")).tenant
    key = f"rb-{uuid.uuid4()}"

    async def publish_then_fail() -> None:
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish(uow, Bumped(key=key))
            raise RuntimeError("rolled back")

    with tenant_scope(a), pytest.raises(RuntimeError):
        await publish_then_fail()
    marker = f"after-{uuid.uuid4()}"
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish(uow, Bumped(key=marker))

    async def marker_seen() -> bool:
        return len(await effects(probed, key=marker)) == 2

    await eventually(marker_seen)
    assert await effects(probed, key=key) == []


async def test_chained_event_carries_correlation_and_causation(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    a = (await make_tenant()).tenant
    key = f"chain-{uuid.uuid4()}"
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish(uow, Bumped(key=key, chain=True))

    async def echoes() -> bool:
        return len(await effects(probed, key=key + ":echo")) >= 2

    await eventually(echoes)
    parents = {r["consumer"]: r for r in await effects(probed, key=key)}
    for echo in await effects(probed, key=key + ":echo"):
        assert echo["causation_id"] in {str(p["message_id"]) for p in parents.values()}
        assert echo["correlation_id"] == parents["sink"]["correlation_id"]
        assert echo["traceparent"][3:35] == parents["sink"]["traceparent"][3:35]
        assert echo["tenant_seen"] == a.id


async def test_events_continue_the_publishers_trace_and_handlers_run_in_it(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    """An event published while handling a request carries the request's trace (as the
    middleware binds it); its handlers run in that trace (their log lines carry its id), and
    so do the events they publish."""
    a = (await make_tenant()).tenant
    key = f"trace-{uuid.uuid4()}"
    trace_id, span_id = f"{uuid.uuid4().int:032x}", f"{uuid.uuid4().int >> 64:016x}"
    token = logs.bind_request({"request_id": "rq", "trace_id": trace_id, "span_id": span_id})
    try:
        with tenant_scope(a):
            async with probed.db.unit_of_work() as uow:
                await probed.dispatcher.publish(uow, Bumped(key=key, chain=True))
    finally:
        logs.reset_request(token)

    async def echoes() -> bool:
        return len(await effects(probed, key=key + ":echo")) >= 2

    await eventually(echoes)
    rows = await effects(probed, key=key) + await effects(probed, key=key + ":echo")
    for r in rows:
        assert r["traceparent"][3:35] == trace_id, r
        assert r["trace_seen"] == trace_id, r
    first = [r for r in rows if r["key"] == key]
    # Ids only: the request's span is the parent; recording: the publish span under it.
    assert all(r["traceparent"][36:52] != "0" * 16 for r in first)


async def test_redelivery_has_no_second_effect(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    a = (await make_tenant()).tenant
    key = f"dup-{uuid.uuid4()}"
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            mid = await probed.dispatcher.publish(uow, Bumped(key=key))

    async def done() -> bool:
        return len(await effects(probed, key=key)) == 2

    await eventually(done)
    # Deliver the same row again (as after a relay crash before marking it delivered).
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            await uow.execute("UPDATE outbox SET delivered_at = NULL WHERE message_id = $1", mid)
            await uow.execute("SELECT pg_notify('tenantry_outbox', $1)", str(a.id))

    async def redelivered() -> bool:
        with tenant_scope(a):
            async with probed.db.unit_of_work() as uow:
                return bool(
                    await uow.fetchval(
                        "SELECT delivered_at IS NOT NULL FROM outbox WHERE message_id = $1", mid
                    )
                )

    await eventually(redelivered)
    await eventually(done)
    assert len(await effects(probed, key=key)) == 2


def _consumer_errors(consumer: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tenantry_consumer_errors_total", {"consumer": consumer}
    )
    return value or 0.0


async def test_poison_message_goes_dead_without_blocking_others(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    a = (await make_tenant()).tenant
    b = (await make_tenant()).tenant
    key = f"poison-{uuid.uuid4()}"
    sink_errors_before = _consumer_errors("sink")
    with tenant_scope(a):
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish(uow, Poison(key=key))
            await probed.dispatcher.publish(uow, Bumped(key=key + "-a"))
    with tenant_scope(b):
        async with probed.db.unit_of_work() as uow:
            await probed.dispatcher.publish(uow, Bumped(key=key + "-b"))

    async def others_done() -> bool:
        return (
            len(await effects(probed, key=key + "-a")) == 2
            and len(await effects(probed, key=key + "-b")) == 2
        )

    await eventually(others_done)

    async def dead_one() -> list[dict[str, object]]:
        return [
            d
            for d in await dead.list_dead(probed.db, probed.catalog)
            if d["name"] == "probe.Poison.v1" and d["payload"]["key"] == key
        ]

    async def is_dead() -> bool:
        return len(await dead_one()) == 1

    await eventually(is_dead, within=20)
    (d,) = await dead_one()
    assert d["tenant"] == a.slug
    assert "poison" in str(d["last_error"])
    # Each failed attempt was tracked as an error of the consumer, with the message's context.
    assert _consumer_errors("sink") > sink_errors_before
    await probed.observability.errors.flush()
    groups = [
        g
        for g in await probed.observability.errors.list(limit=500)
        if g["error_type"] == "builtins.RuntimeError" and g["message"] == f"poison {key}"
    ]
    assert len(groups) == 1
    shown = await probed.observability.errors.show(groups[0]["id"])
    assert shown is not None
    occurrence = shown["recent"][0]
    assert occurrence["tenant_id"] == str(a.id)
    assert occurrence["context"]["consumer"] == "sink"
    assert occurrence["context"]["message"] == "probe.Poison.v1"
    assert len(occurrence["trace_id"]) == 32
    assert any(f["function"] == "on_poison" for f in occurrence["stack"])
    assert await dead.replay(probed.db, probed.catalog, d["id"])  # type: ignore[arg-type]
    # Replayed, it fails again and dies again (with a new dead-letter id).
    await eventually(is_dead, within=20)
    (d2,) = await dead_one()
    assert await dead.discard(probed.db, probed.catalog, d2["id"])  # type: ignore[arg-type]
    assert await dead_one() == []


async def test_command_has_one_handler_and_the_same_answer_on_both_transports(
    probed: Platform, make_tenant: MakeTenant, transport: str
) -> None:
    """A command without ``replies``: ``send`` returns None in-process too (the handler's
    return value is dropped), so moving its edge to the bus changes nothing for the caller."""
    a = (await make_tenant()).tenant
    key = f"cmd-{uuid.uuid4()}"
    with tenant_scope(a):
        result = await probed.dispatcher.send(Add(key=key, a=2, b=3))
    assert result is None

    async def handled() -> bool:
        return len(await effects(probed, key=key)) == 1

    await eventually(handled)
    (row,) = await effects(probed, key=key)
    assert row["n"] == 5
    assert row["consumer"] == "sink"
    assert row["tenant_seen"] == a.id


async def test_command_with_a_reply_returns_it_and_refuses_a_bus_edge(
    probed: Platform, make_tenant: MakeTenant
) -> None:
    """``replies=True``: the sender gets the handler's result; an edge configured ``bus`` for
    such a command is a start-up error (configure_routes), never a silent None."""
    a = (await make_tenant()).tenant
    with tenant_scope(a):
        assert await probed.dispatcher.send(Sum(a=2, b=40)) == 42
    with pytest.raises(ConfigError, match=r"'probe -> sink' = 'bus'.*probe\.Sum\.v1"):
        probed.messaging.configure_routes({"probe -> sink": "bus"}, ["probe", "sink"])
    assert probed.dispatcher.routes.transport("probe", "sink") is Transport.INPROC
    saved = dict(probed.dispatcher.routes.edges)
    probed.dispatcher.routes.edges[("probe", "sink")] = Transport.BUS  # bypassing the check
    try:
        with tenant_scope(a), pytest.raises(ConfigError, match="returns a result"):
            await probed.dispatcher.send(Sum(a=1, b=1))
    finally:
        probed.dispatcher.routes = Routes(saved)
