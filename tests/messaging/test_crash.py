"""Crash tests: SIGKILL the worker (relay + consumers) mid-stream and restart it; drop the
broker connections, or stop and start RabbitMQ, mid-stream.
Every event is folded exactly once, none is lost."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection, tenant_unit_of_work
from tenantry.kernel.messaging.rabbitmq import RabbitBus
from tenantry.kernel.messaging.routing import Routes, Transport
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import Tenant
from tenantry_ledger.contracts import PostedEntry, TransactionPosted
from tests.cli import database_toml
from tests.conftest import MakeTenant
from tests.messaging.conftest import AMQP_URL, PREFIX, eventually, require_rabbit

N = 300


def event(account: uuid.UUID, i: int) -> TransactionPosted:
    return TransactionPosted(
        transaction_id=uuid.uuid4(),
        posted_at=datetime(2026, 6, 1, 12, tzinfo=UTC),
        description=f"crash {i}",
        entries=[
            PostedEntry(
                account_id=account, account_code="1000", currency="EUR", direction="debit", amount=1
            ),
            PostedEntry(
                account_id=uuid.uuid4(),
                account_code="4000",
                currency="EUR",
                direction="credit",
                amount=1,
            ),
        ],
    )


async def publish_many(
    platform: Platform,
    tenant: Tenant,
    account: uuid.UUID,
    first: int = 0,
    last: int = N,
    step: int = 50,
    pause: float = 0.0,
) -> None:
    with tenant_scope(tenant):
        for start in range(first, last, step):
            async with platform.db.unit_of_work() as uow:
                for i in range(start, min(last, start + step)):
                    await platform.dispatcher.publish(uow, event(account, i))
            if pause:
                await asyncio.sleep(pause)


async def folded(platform: Platform, tenant: Tenant, account: uuid.UUID) -> int:
    async with admin_connection(platform.db, as_owner=False) as conn:
        n = await conn.fetchval(
            f'SELECT coalesce(sum(entries), 0) FROM "{tenant.schema}".reporting_daily'
            " WHERE tenant_id = $1 AND account_id = $2",
            tenant.id,
            account,
        )
    return int(n)


async def pending(platform: Platform, tenant: Tenant) -> int:
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        return int(
            await uow.fetchval(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND name = $1",
                TransactionPosted.message_name,
            )
        )


@pytest.fixture
async def relay_paused(probed: Platform) -> AsyncIterator[Platform]:
    """The session relay stopped, so only the process under test delivers."""
    await probed.messaging.relay.stop()
    try:
        yield probed
    finally:
        await probed.messaging.start_relay()


def write_config(path: Path, settings: Settings, prefix: str, mode: str) -> Path:
    path.write_text(
        database_toml(settings, pool_max=6)
        + f"""
[messaging]
amqp_url = "{AMQP_URL}"
amqp_prefix = "{prefix}"
poll_interval_s = 1.0
batch_size = 25

[dispatch]
"ledger -> reporting" = "{mode}"
""",
        encoding="utf-8",
    )
    return path


def start_worker(config: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("tenantry")
    return subprocess.Popen(
        [str(exe), "--config", str(config), "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TENANTRY_CONFIG": str(config)},
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def drop_broker_objects(prefix: str) -> None:
    conn = await aio_pika.connect(AMQP_URL)
    try:
        ch = await conn.channel()
        await ch.queue_delete(f"{prefix}.reporting")
        await ch.exchange_delete(f"{prefix}.ledger")
    finally:
        await conn.close()


async def test_worker_sigkill_mid_stream_then_restart(
    relay_paused: Platform,
    make_tenant: MakeTenant,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """`tenantry worker` (relay + bus consumer) killed with SIGKILL mid-stream, restarted."""
    platform = relay_paused
    mode = "bus"
    await require_rabbit()
    prefix = f"{PREFIX}-crash-{mode}"
    config = write_config(tmp_path / "worker.toml", settings, prefix, mode)
    tenant = (await make_tenant("shared")).tenant
    account = uuid.uuid4()
    await publish_many(platform, tenant, account)
    proc = start_worker(config)
    try:
        deadline = time.monotonic() + 60
        while (n := await folded(platform, tenant, account)) < 25:
            assert proc.poll() is None, "worker exited"
            assert time.monotonic() < deadline, "worker delivered nothing"
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = await folded(platform, tenant, account)
        assert n <= at_kill
        proc = start_worker(config)

        async def all_folded() -> bool:
            return await pending(platform, tenant) == 0 and (
                await folded(platform, tenant, account) >= N
            )

        await eventually(all_folded, within=60, interval=0.1)
        await asyncio.sleep(1.0)  # let any duplicate redelivery land (it must have no effect)
        assert await folded(platform, tenant, account) == N
        assert at_kill < N, "the stream finished before the kill; the test proved nothing"
    finally:
        stop(proc)
        await drop_broker_objects(prefix)


def close_connections(prefix: str) -> int:
    """Force-close this run's broker connections (names carry the prefix), as a broker
    restart would, without touching anyone else's."""
    out = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    closed = 0
    for line in out.splitlines():
        if (
            f'"connection_name","{prefix}' in line
            or f"connection_name,{prefix}" in line
            or (prefix in line)
        ):
            pid = line.split("\t", 1)[0].strip()
            subprocess.run(
                ["rabbitmqctl", "close_connection", pid, "test: forced drop"],
                capture_output=True,
                check=False,
            )
            closed += 1
    return closed


def broker_restartable() -> bool:
    """``rabbitmqctl stop_app``/``start_app`` need the broker's Erlang cookie (root here)."""
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["rabbitmqctl", "-q", "status"], capture_output=True, check=False, timeout=60
    )
    return probe.returncode == 0


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, check=True, timeout=120)


async def wait_broker_up() -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = await aio_pika.connect(AMQP_URL, timeout=5)
        except Exception:
            assert time.monotonic() < deadline, "RabbitMQ did not come back"
            await asyncio.sleep(0.2)
            continue
        await conn.close()
        return


@pytest.mark.parametrize("outage", ["connections closed", "broker restarted"])
async def test_broker_outage_mid_stream(
    relay_paused: Platform, make_tenant: MakeTenant, outage: str
) -> None:
    """Mid-stream, either every connection of this run is force-closed, or RabbitMQ itself is
    stopped and started (``rabbitmqctl stop_app/start_app``, restored in a finally; skipped
    where the test may not do that). The relay's publisher and the consumer reconnect;
    every event is folded exactly once and none is lost."""
    platform = relay_paused
    await require_rabbit()
    if outage == "broker restarted" and not broker_restartable():
        pytest.skip("rabbitmqctl stop_app/start_app not available to this user")
    saved = dict(platform.dispatcher.routes.edges)
    platform.dispatcher.routes.edges[("ledger", "reporting")] = Transport.BUS
    consumer = RabbitBus(
        platform.messaging.settings, platform.dispatcher, platform.catalog, role="drop-worker"
    )
    tenant = (await make_tenant("schema")).tenant
    account = uuid.uuid4()
    stopped = False
    try:
        await platform.messaging.close()  # a fresh publisher connection for this test
        await consumer.consume(["reporting"])
        await publish_many(platform, tenant, account, 0, N // 2)
        await platform.messaging.start_relay()
        deadline = time.monotonic() + 30
        while await folded(platform, tenant, account) < 25:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        # The other half keeps coming, 10 events every 200 ms, across the outage.
        stream = asyncio.create_task(
            publish_many(platform, tenant, account, N // 2, N, step=10, pause=0.2)
        )
        if outage == "connections closed":
            closed = close_connections(PREFIX)
            assert closed >= 2  # the relay's publisher and the consumer
            at_outage = await folded(platform, tenant, account)
        else:
            stopped = True
            await asyncio.to_thread(rabbitmqctl, "stop_app")
            at_outage = await folded(platform, tenant, account)
            await asyncio.sleep(1.0)  # the relay keeps trying meanwhile
            await asyncio.to_thread(rabbitmqctl, "start_app")
            stopped = False
            await wait_broker_up()
        await stream

        async def all_folded() -> bool:
            return await pending(platform, tenant) == 0 and (
                await folded(platform, tenant, account) >= N
            )

        try:
            await eventually(all_folded, within=60, interval=0.1)
        except AssertionError:
            raise AssertionError(
                f"pending={await pending(platform, tenant)} "
                f"folded={await folded(platform, tenant, account)} handled={consumer.handled} "
                f"connections={consumer.connections}"
            ) from None
        await asyncio.sleep(1.0)  # let any duplicate redelivery land (it must have no effect)
        assert await folded(platform, tenant, account) == N
        assert consumer.connections >= 2  # the consumer did reconnect
        assert at_outage < N, "the stream finished before the outage; the test proved nothing"
        async with tenant_unit_of_work(platform.db, tenant) as uow:  # no spurious dead letters
            assert await uow.fetchval("SELECT count(*) FROM outbox_dead") == 0
    finally:
        if stopped:
            await asyncio.to_thread(rabbitmqctl, "start_app")
            await wait_broker_up()
        await platform.messaging.close()
        await consumer.close()
        platform.dispatcher.routes = Routes(saved)


async def test_relay_dies_after_handling_before_marking(
    relay_paused: Platform, make_tenant: MakeTenant
) -> None:
    """In-process edge: the relay dies after its consumers ran but before it committed. Their
    effects share the claim transaction, so nothing happened and nothing is marked; the next
    relay delivers the batch once. Then the inbox's own case: messages already handled (as
    by a consumer whose mark was lost) but still pending are redelivered with no effect."""
    from tenantry.kernel.messaging.dispatcher import envelope_from_row
    from tenantry.kernel.messaging.relay import Relay
    from tenantry.kernel.messaging.sql import CLAIM_OUTBOX

    platform = relay_paused
    tenant = (await make_tenant("schema")).tenant
    account = uuid.uuid4()
    await publish_many(platform, tenant, account)
    m = platform.messaging
    doomed = Relay(platform.db, platform.catalog, m.dispatcher, m.settings)
    original = doomed._deliver

    async def deliver_then_die(claim: Any, envs: Any) -> Any:
        await original(claim, envs)
        assert await folded_in(claim, account) > 0  # the handlers did run
        raise ConnectionResetError("relay process died")

    doomed._deliver = deliver_then_die  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await doomed.run_batch(tenant)
    assert await folded(platform, tenant, account) == 0  # rolled back with the claim
    assert await pending(platform, tenant) == N
    # 50 messages handled and committed by someone else, never marked delivered:
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        envs = [envelope_from_row(r) for r in await uow.fetch(CLAIM_OUTBOX, N + 10)]
    posted = [e for e in envs if e.name == TransactionPosted.message_name][:50]
    with tenant_scope(tenant):
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            await m.dispatcher.deliver_batch(uow, posted, "reporting")
    assert await folded(platform, tenant, account) == 50
    fresh = Relay(platform.db, platform.catalog, m.dispatcher, m.settings)
    await fresh.drain([tenant])
    assert await pending(platform, tenant) == 0
    assert await folded(platform, tenant, account) == N


async def folded_in(uow: Any, account: uuid.UUID) -> int:
    n = await uow.fetchval(
        "SELECT coalesce(sum(entries), 0) FROM reporting_daily WHERE account_id = $1", account
    )
    return int(n)
