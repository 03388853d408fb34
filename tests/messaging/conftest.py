"""Fixtures of the messaging tests: probe handlers on the module platform's dispatcher, the
transport (every probe edge ``inproc``, then ``bus``), a RabbitMQ consumer with names unique
to this run. With ``CI=true`` a missing RabbitMQ fails the bus tests instead of skipping."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest

from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.messaging.rabbitmq import RabbitBus
from tenantry.kernel.messaging.routing import Routes, Transport
from tenantry.kernel.platform import Platform
from tests.conftest import RUN
from tests.messaging import probe

AMQP_URL = os.environ.get("TENANTRY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PREFIX = f"tenantry-test-{RUN}"
PROBE_EDGES = [
    ("probe", "sink"),
    ("probe", "audit"),
    ("ledger", "reporting"),
    ("ledger", "notifications"),
    ("identity", "notifications"),
    ("platform", "notifications"),
]


async def rabbit_available() -> bool:
    try:
        conn = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 5)
    except Exception:
        return False
    await conn.close()
    return True


async def require_rabbit() -> None:
    if await rabbit_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"RabbitMQ is required in CI and is not reachable at {AMQP_URL}")
    pytest.skip(f"RabbitMQ not reachable at {AMQP_URL}")


async def delete_broker_objects() -> None:
    """Drop this run's queues and exchanges (names carry the run's prefix)."""
    try:
        conn = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 5)
    except Exception:
        return
    try:
        channel = await conn.channel()
        for consumer in ("sink", "audit", "reporting", "notifications", "ledger"):
            await channel.queue_delete(f"{PREFIX}.{consumer}")
        for owner in ("probe", "ledger", "identity", "platform"):
            await channel.exchange_delete(f"{PREFIX}.{owner}")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def probed(platform: Platform) -> AsyncIterator[Platform]:
    """The module's platform with the probe handlers registered and fast retries."""
    if "probe.Bumped.v1" not in platform.dispatcher.types:
        probe.register(platform.dispatcher)
    s = platform.messaging.settings
    s.backoff_base_s = 0.02
    s.backoff_max_s = 0.2
    s.max_attempts = 3
    s.consumer_attempts = 2
    s.poll_interval_s = 0.5
    s.amqp_url = AMQP_URL
    s.amqp_prefix = PREFIX
    async with admin_connection(platform.db, as_owner=False) as conn:
        await conn.execute(probe.EFFECTS_DDL)
        await conn.execute(
            f"GRANT SELECT, INSERT ON public.msg_probe_effects TO "
            f'"{platform.settings.database.app_user}"'
        )
    yield platform
    await platform.messaging.close()
    await delete_broker_objects()


@dataclass
class BusSide:
    consumer: RabbitBus | None


@pytest.fixture(params=["inproc", "bus"])
async def transport(request: pytest.FixtureRequest, probed: Platform) -> AsyncIterator[str]:
    """Every probe edge on one transport; for the bus, a consumer like `tenantry worker`."""
    mode = Transport(request.param)
    routes = probed.dispatcher.routes
    saved = dict(routes.edges)
    consumer: RabbitBus | None = None
    if mode is Transport.BUS:
        await require_rabbit()
        await probed.messaging.connect_bus()
        consumer = RabbitBus(
            probed.messaging.settings, probed.dispatcher, probed.catalog, role="test-worker"
        )
    for edge in PROBE_EDGES:
        routes.edges[edge] = mode
    try:
        if consumer is not None:
            await consumer.consume(["sink", "audit", "reporting", "notifications"])
        yield mode.value
    finally:
        probed.dispatcher.routes = Routes(saved)
        if consumer is not None:
            await consumer.close()


async def effects(platform: Platform, **where: Any) -> list[dict[str, Any]]:
    conds = " AND ".join(f"{k} = ${i}" for i, k in enumerate(where, 1)) or "true"
    async with admin_connection(platform.db, as_owner=False) as conn:
        rows = await conn.fetch(
            f"SELECT * FROM public.msg_probe_effects WHERE {conds}", *where.values()
        )
    return [dict(r) for r in rows]


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
