"""Every application connection terminated (``pg_terminate_backend``), several times, under
traffic: no request is a 500 (a lost database is a 503 with ``Retry-After``), the LISTEN
connections re-open (NOTIFYs after the kill wake the relay, the job runner and the caches
again, without waiting for a poll), and the job worker, the relay and the saga resumer keep
running."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from tenantry.capabilities.cache import Cache
from tenantry.capabilities.entitlements.plans import Plans
from tenantry.kernel.db.privileged import admin_dsn
from tenantry.kernel.jobs.runner import JobContext, JobRunner, JobsSettings
from tenantry.kernel.messaging.relay import Relay
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant, TenantFixture

API = "/api/v1/ledger"
KILL_ALL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    # the platform's pools and LISTEN connections, not other tests' own connections
    " AND application_name IN ('tenantry', 'tenantry-listen')"
)


@pytest.fixture
async def admin(platform: Platform) -> AsyncIterator[asyncpg.Connection]:
    """A separate superuser connection to the main database: the one the kills come from."""
    conn = await asyncpg.connect(admin_dsn(platform.db))
    yield conn
    await conn.close()


async def kill_all(admin: asyncpg.Connection) -> int:
    killed: int = await admin.fetchval(KILL_ALL)
    return killed


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 5.0) -> float:
    """Seconds until ``check`` holds (fails after ``within``)."""
    start = time.monotonic()
    while True:
        got = check()
        if not isinstance(got, bool):
            got = await got
        if got:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(0.05)


async def reconnected(platform: Platform, before: int) -> None:
    listener = platform.db.listener()
    await eventually(lambda: listener.connected and listener.reconnects > before)


# -- under traffic ------------------------------------------------------------------------------
async def _account(client: httpx.AsyncClient, t: TenantFixture) -> dict[str, Any]:
    body = {"code": f"cl-{uuid.uuid4().hex[:10]}", "name": "n", "type": "asset", "currency": "EUR"}
    r = await client.post(f"{API}/accounts", json=body, headers=t.auth)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_no_500_under_traffic_while_every_connection_is_terminated(
    platform: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    admin: asyncpg.Connection,
) -> None:
    t = await make_tenant(plan="enterprise")
    src, dst = await _account(client, t), await _account(client, t)
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    stop = asyncio.Event()
    ok_after_last_kill = 0
    last_kill = [0.0]

    async def one(i: int) -> httpx.Response:
        kind = i % 4
        if kind == 0:
            return await client.get(f"{API}/accounts", headers=t.auth)
        if kind == 1:
            return await client.get(f"{API}/accounts/{src['id']}/balance", headers=t.auth)
        if kind == 2:
            body = {
                "code": f"cl-{uuid.uuid4().hex[:12]}",
                "name": "n",
                "type": "asset",
                "currency": "EUR",
            }
            return await client.post(f"{API}/accounts", json=body, headers=t.auth)
        doc = {
            "entries": [
                {"account_id": dst["id"], "direction": "debit", "amount": 1},
                {"account_id": src["id"], "direction": "credit", "amount": 1},
            ]
        }
        headers = {**t.auth, "Idempotency-Key": uuid.uuid4().hex}
        return await client.post(f"{API}/transactions", json=doc, headers=headers)

    async def traffic(worker: int) -> None:
        nonlocal ok_after_last_kill
        i = worker
        while not stop.is_set():
            i += 1
            sent = time.monotonic()
            r = await one(i)
            statuses[r.status_code] += 1
            if r.status_code < 300:
                if last_kill[0] and sent > last_kill[0]:
                    ok_after_last_kill += 1
                continue
            problem = r.headers.get("content-type") == "application/problem+json"
            if r.status_code != 503 or r.headers.get("retry-after") != "1" or not problem:
                bad.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
            elif not r.json()["type"].endswith("/database-unavailable"):
                bad.append(f"503 of another type: {r.text}")

    workers = [asyncio.create_task(traffic(w)) for w in range(12)]
    try:
        await asyncio.sleep(0.5)
        killed = []
        for _ in range(5):
            killed.append(await kill_all(admin))
            await asyncio.sleep(0.02)
            killed.append(await kill_all(admin))  # the connections re-opened meanwhile too
            await asyncio.sleep(0.8)
        last_kill[0] = time.monotonic()
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    print(f"statuses {dict(statuses)}, killed {killed}")
    assert sum(killed) >= 10, killed
    assert not bad, bad[:5]
    assert statuses[500] == 0
    assert sum(n for s, n in statuses.items() if s < 300) > 100, statuses
    assert ok_after_last_kill > 10, statuses  # recovered
    # And the server is healthy afterwards.
    assert (await client.get("/readyz")).status_code == 200


# -- LISTEN connections re-open ----------------------------------------------------------------
class ConnLossPinged(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "connloss.Pinged.v1"
    n: int


async def _delivered(platform: Platform, t: TenantFixture, message_id: uuid.UUID) -> bool:
    with tenant_scope(t.tenant):
        async with platform.db.unit_of_work() as uow:
            at = await uow.fetchval(
                "SELECT delivered_at FROM outbox WHERE message_id = $1", message_id
            )
    return at is not None


async def test_relay_is_woken_by_notify_after_its_connection_was_terminated(
    platform: Platform, make_tenant: MakeTenant, admin: asyncpg.Connection
) -> None:
    """A relay that polls only every 10 minutes: a message published after the kill is
    delivered within seconds only if its LISTEN connection came back."""
    t = await make_tenant()
    session_relay = platform.messaging.relay
    await session_relay.stop()
    settings = platform.messaging.settings.model_copy(update={"poll_interval_s": 600.0})
    relay = Relay(platform.db, platform.catalog, platform.messaging.dispatcher, settings)
    await relay.start()
    try:
        await asyncio.sleep(0.3)  # the first (polling) round is over
        for n in range(3):
            before = platform.db.listener().reconnects
            assert await kill_all(admin) >= 1
            await reconnected(platform, before)
            with tenant_scope(t.tenant):
                async with platform.db.unit_of_work() as uow:
                    mid = await platform.messaging.dispatcher.publish(uow, ConnLossPinged(n=n))
            await eventually(functools.partial(_delivered, platform, t, mid), within=5)
        assert relay.running
        assert relay.notified >= 3
    finally:
        await relay.stop()
        await session_relay.start()


class _Runner(JobRunner):
    """Loses its connection exactly where ``work`` used to die of it: the tenant list at the
    top of the loop (the server terminates the backend of that very query)."""

    kills = 0

    async def _tenants(self) -> list[Any]:
        if self.kills < 2:
            self.kills += 1
            async with self.db.platform_unit_of_work() as uow:
                await uow.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return await super()._tenants()


async def test_job_worker_survives_and_is_woken_after_its_connection_was_terminated(
    platform: Platform, make_tenant: MakeTenant, admin: asyncpg.Connection
) -> None:
    t = await make_tenant()
    settings = JobsSettings(poll_interval_s=60, schedule_interval_s=3600, backoff_base_s=0)
    runner = _Runner(platform.db, platform.catalog, settings)
    done: list[int] = []

    async def ping(ctx: JobContext) -> None:
        done.append(int(ctx.payload["n"]))

    runner.register("connloss.ping", ping)
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.work(stop))
    try:
        await eventually(lambda: runner.kills == 2, within=10)
        for n in range(3):
            await asyncio.sleep(0.3)
            assert not worker.done(), worker.exception()
            before = platform.db.listener().reconnects
            assert await kill_all(admin) >= 1
            await reconnected(platform, before)
            with tenant_scope(t.tenant):
                async with platform.db.unit_of_work() as uow:
                    await runner.enqueue(uow, "connloss.ping", {"n": n})
            await eventually(functools.partial(operator.contains, done, n), within=5)  # not 60 s
        assert runner.notified >= 3
        assert not worker.done()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker, 10)


async def test_caches_are_cleared_on_reconnect_and_notified_after_it(
    platform: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    admin: asyncpg.Connection,
) -> None:
    t = await make_tenant()
    principals = platform.principals
    assert (await client.get(f"{API}/accounts", headers=t.auth)).status_code == 200
    key = next(k for k in principals._cache if k[0] == t.tenant.id)
    plans = platform.use(Plans)
    assert t.tenant.id in plans._cache
    before = platform.db.listener().reconnects
    await kill_all(admin)
    await reconnected(platform, before)
    # Notifications sent while it was down are lost: the caches start again empty.
    assert key not in principals._cache
    assert t.tenant.id not in plans._cache
    # And NOTIFYs after the kill arrive again.
    assert (await client.get(f"{API}/accounts", headers=t.auth)).status_code == 200
    assert key in principals._cache
    assert t.tenant.id in plans._cache
    await admin.execute("SELECT pg_notify('tenantry_principals', $1)", f"{key[0]}:{key[1]}")
    await admin.execute("SELECT pg_notify('tenantry_plans', $1)", str(t.tenant.id))
    await eventually(lambda: key not in principals._cache and t.tenant.id not in plans._cache)


async def test_cache_l1_is_off_while_disconnected_and_clean_after(
    platform: Platform, make_tenant: MakeTenant, admin: asyncpg.Connection
) -> None:
    cache = platform.find(Cache)
    if cache is None or cache.l1.size <= 0:
        pytest.skip("no L1 in this configuration")
    t = await make_tenant()
    with tenant_scope(t.tenant):
        await cache.set("cl:1", {"v": 1})
        assert await cache.get("cl:1") == {"v": 1}
        assert len(cache.l1) >= 1
        listener = platform.db.listener()
        lost: list[bool] = []
        listener.on_lost.append(lambda: lost.append(cache._coherent))
        try:
            before = listener.reconnects
            await kill_all(admin)
            await reconnected(platform, before)
        finally:
            listener.on_lost.pop()
        assert lost == [False]  # the cache's own hook ran first: L1 off
        assert cache._coherent
        assert len(cache.l1) == 0
        assert await cache.get("cl:1") == {"v": 1}
