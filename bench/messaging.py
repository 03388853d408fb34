"""Messaging figures (DESIGN.md §8 "in-process dispatch", "outbox", "saga over RabbitMQ").

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.messaging

In one run (bounded well under 4 minutes):
1. a direct call of a command handler vs ``Dispatcher.send`` in-process (with and without
   the wire round trip), per message;
2. the outbox relay: offer 500 / 1,000 / 2,000 events/s (open-loop paced producers, one
   per tenant, 4 tenants, a small transaction every 10 ms each; offered and achieved rates
   printed) and measure delivery lag p50/p99 (insert to handled, inbox row included); then
   the drain rate of a 20,000-event backlog; baselines: the relay's SQL alone (claim with
   ``FOR UPDATE SKIP LOCKED`` + mark delivered, one worker) and raw ``DELETE ... SKIP
   LOCKED`` from a bare unlogged table (4 workers);
3. the onboarding saga (shared tenant, chart of accounts, admin user) with the welcome event
   routed over RabbitMQ: saga p50/p99 with the time per step, and p99 until the bus
   consumer handled the welcome event.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import ClassVar

import asyncpg
from pydantic import BaseModel

from bench._common import bench_database_url, table
from tenantry.kernel.config import load_settings
from tenantry.kernel.db.privileged import admin_connection, admin_dsn
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.messaging.rabbitmq import RabbitBus
from tenantry.kernel.messaging.relay import Relay
from tenantry.kernel.messaging.routing import Transport
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest


class Add(BaseModel):
    message_name: ClassVar[str] = "platform.BenchAdd.v1"
    a: int
    b: int


class Tick(BaseModel):
    message_name: ClassVar[str] = "platform.BenchTick.v1"
    seq: int


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def bench_dispatch(p: Platform, tenant: Tenant) -> list[list[object]]:
    async def handler(uow: UnitOfWork, cmd: Add, ctx: MessageContext) -> int:
        return cmd.a + cmd.b

    p.dispatcher.handle("bench", Add, handler, replies=True)  # like for like: it returns
    uow = UnitOfWork(None, tenant, None)  # type: ignore[arg-type]  # the handler runs no SQL
    ctx = MessageContext(uuid.uuid4(), Add.message_name, None, "bench")
    cmd = Add(a=2, b=3)
    n = 20_000
    rows: list[list[object]] = []

    async def direct() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await handler(uow, cmd, ctx)
        return (time.perf_counter() - t0) / n * 1e6

    async def send() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await p.dispatcher.send(cmd, uow)
        return (time.perf_counter() - t0) / n * 1e6

    base = min([await direct() for _ in range(3)])
    rows.append(["direct call of the handler", f"{base:.2f} µs", "-", load()])
    for serialize in (True, False):
        p.dispatcher.settings.serialize_inproc = serialize
        t = min([await send() for _ in range(3)])
        label = "wire round trip (default)" if serialize else "no serialization"
        rows.append(
            [f"Dispatcher.send in-process, {label}", f"{t:.2f} µs", f"+{t - base:.2f} µs", load()]
        )
    p.dispatcher.settings.serialize_inproc = True
    return rows


async def publish_at(
    p: Platform, tenants: list[Tenant], rate: int, seconds: float
) -> tuple[int, float]:
    """Offer ``rate`` events/s for ``seconds``, open loop: one producer per tenant wakes every
    10 ms and commits, in one small transaction, every event its share of the rate owes by
    now (a late wake-up publishes more in its next transaction instead of lowering the
    rate). Returns (events sent, seconds spent): the rate actually achieved is printed
    beside the offered one, so a producer that could not keep up shows."""
    tick = 0.01
    per_tenant = rate / len(tenants)
    sent = [0]

    async def producer(t: Tenant) -> None:
        start = time.perf_counter()
        mine = 0
        k = 0
        with tenant_scope(t):
            while (elapsed := time.perf_counter() - start) < seconds:
                n = int(per_tenant * elapsed) - mine
                if n > 0:
                    async with p.db.unit_of_work() as uow:
                        for _ in range(n):
                            await p.dispatcher.publish(uow, Tick(seq=sent[0]))
                            sent[0] += 1
                    mine += n
                k += 1
                behind = start + k * tick - time.perf_counter()
                if behind > 0:
                    await asyncio.sleep(behind)

    t0 = time.perf_counter()
    await asyncio.gather(*(producer(t) for t in tenants))
    return sent[0], time.perf_counter() - t0


async def bench_outbox(p: Platform, tenants: list[Tenant]) -> list[list[object]]:
    async def on_tick(uow: UnitOfWork, ev: Tick, ctx: MessageContext) -> None:
        return None

    p.dispatcher.subscribe("bench", Tick, on_tick)
    relay = p.messaging.relay
    relay.record_lag = True
    await relay.start()
    rows: list[list[object]] = []
    for rate in (500, 1000, 2000):
        relay.stats.lags_ms.clear()
        before = relay.stats.delivered
        t0 = time.perf_counter()
        sent, producing = await publish_at(p, tenants, rate, 6.0)
        while relay.stats.delivered - before < sent:  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
        lags = relay.stats.lags_ms
        rows.append(
            [
                f"outbox relay at {rate:,}/s offered",
                f"{sent / producing:,.0f}/s",
                f"{sent / elapsed:,.0f}/s",
                f"{pct(lags, 0.5):.1f} ms",
                f"{pct(lags, 0.99):.1f} ms",
                load(),
            ]
        )
    await relay.stop()
    relay.record_lag = False
    # Backlog drain: 20,000 events, then one relay vs raw SKIP LOCKED on a bare table.
    backlog = 20_000
    for k, t in enumerate(tenants):
        with tenant_scope(t):
            for _ in range(0, backlog // len(tenants), 500):
                async with p.db.unit_of_work() as uow:
                    for j in range(500):
                        await p.dispatcher.publish(uow, Tick(seq=k * backlog + j))
    fresh = Relay(p.db, p.catalog, p.dispatcher, p.messaging.settings)
    t0 = time.perf_counter()
    drained = await fresh.drain(tenants)
    drain_rate = drained / (time.perf_counter() - t0)
    rows.append(
        [
            f"one relay draining a {backlog:,} backlog (inbox rows incl.)",
            "-",
            f"{drain_rate:,.0f}/s",
            "-",
            "-",
            load(),
        ]
    )
    claim_mark = await raw_claim_mark(p, backlog)
    rows.append(
        [
            "baseline: raw SKIP LOCKED claim + mark delivered, 1 worker (outbox-shaped table)",
            "-",
            f"{claim_mark:,.0f}/s",
            "-",
            "-",
            load(),
        ]
    )
    rows.append(
        [
            "baseline: raw DELETE ... SKIP LOCKED, 4 workers (bare unlogged table)",
            "-",
            f"{await raw_skip_locked(p, backlog):,.0f}/s",
            "-",
            "-",
            load(),
        ]
    )
    return rows


RAW_DDL = """
CREATE UNLOGGED TABLE IF NOT EXISTS public.bench_jobs (
    id bigserial PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz DEFAULT now())
"""
RAW_FILL = (
    "INSERT INTO public.bench_jobs (payload) SELECT jsonb_build_object('seq', g)"
    " FROM generate_series(1, $1) g"
)
RAW_CLAIM = """
DELETE FROM public.bench_jobs WHERE id IN (
    SELECT id FROM public.bench_jobs ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""


RAW_OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS public.bench_outbox (
    id bigserial PRIMARY KEY, payload jsonb NOT NULL, delivered_at timestamptz,
    created_at timestamptz DEFAULT clock_timestamp())
"""
RAW_OUTBOX_FILL = (
    "INSERT INTO public.bench_outbox (payload) SELECT jsonb_build_object('seq', g)"
    " FROM generate_series(1, $1) g"
)
RAW_OUTBOX_CLAIM = """
SELECT id, payload FROM public.bench_outbox WHERE delivered_at IS NULL
ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED
"""
RAW_OUTBOX_MARK = "UPDATE public.bench_outbox SET delivered_at = now() WHERE id = ANY($1::bigint[])"


async def raw_claim_mark(p: Platform, n: int) -> float:
    """What the relay's SQL does with no platform around it: claim 200 rows with SKIP
    LOCKED and mark them delivered, one transaction per batch, one worker."""
    async with admin_connection(p.db, as_owner=False) as conn:
        await conn.execute(RAW_OUTBOX_DDL)
        await conn.execute("TRUNCATE public.bench_outbox")
        await conn.execute(RAW_OUTBOX_FILL, n)
        await conn.execute("VACUUM ANALYZE public.bench_outbox")
    conn = await asyncpg.connect(admin_dsn(p.db))
    got = 0
    t0 = time.perf_counter()
    try:
        while True:
            async with conn.transaction():
                rows = await conn.fetch(RAW_OUTBOX_CLAIM)
                if not rows:
                    break
                await conn.execute(RAW_OUTBOX_MARK, [r["id"] for r in rows])
            got += len(rows)
    finally:
        await conn.close()
    return got / (time.perf_counter() - t0)


def load() -> str:
    """The 1-minute load average when a figure was taken (the machine is shared)."""
    return f"{os.getloadavg()[0]:.1f}"


async def raw_skip_locked(p: Platform, n: int) -> float:
    async with admin_connection(p.db, as_owner=False) as conn:
        await conn.execute(RAW_DDL)
        await conn.execute("TRUNCATE public.bench_jobs")
        await conn.execute(RAW_FILL, n)
    dsn = admin_dsn(p.db)

    async def worker() -> int:
        conn = await asyncpg.connect(dsn)
        got = 0
        try:
            while rows := await conn.fetch(RAW_CLAIM):
                got += len(rows)
        finally:
            await conn.close()
        return got

    t0 = time.perf_counter()
    done = sum(await asyncio.gather(*(worker() for _ in range(4))))
    return done / (time.perf_counter() - t0)


async def bench_saga(p: Platform, prefix: str) -> list[list[object]]:
    handled: dict[str, float] = {}

    async def on_welcome(uow: UnitOfWork, ev: TenantOnboarded, ctx: MessageContext) -> None:
        handled[ev.slug] = time.perf_counter()

    p.dispatcher.subscribe("welcome", TenantOnboarded, on_welcome)
    p.dispatcher.routes.edges[("platform", "welcome")] = Transport.BUS
    p.messaging.settings.amqp_prefix = prefix
    await p.messaging.start_relay()
    consumer = RabbitBus(p.messaging.settings, p.dispatcher, p.catalog, role="bench-worker")
    await consumer.consume(["welcome"])
    saga_ms, e2e_ms = [], []
    marks: list[tuple[str, float]] = []
    steps: dict[str, list[float]] = {}

    async def mark(kind: str, where: str) -> None:  # the runner's hook: before each action
        marks.append((where.removeprefix("do:"), time.perf_counter()))

    p.sagas.inject = mark
    try:
        for i in range(40):
            slug = f"sagabench-{i}"
            t0 = time.perf_counter()
            await p.provisioner.create(
                ProvisionRequest(
                    slug,
                    "Saga bench",
                    IsolationMode.SHARED,
                    options={"admin_email": f"a@{slug}.test", "admin_password": "bench-password-1"},
                )
            )
            t1 = time.perf_counter()
            saga_ms.append((t1 - t0) * 1000)
            seq = [("(saga row inserted)", t0), *marks, ("", t1)]
            for (name, ta), (_, tb) in itertools.pairwise(seq):
                steps.setdefault(name, []).append((tb - ta) * 1000)
            marks.clear()
            while slug not in handled:  # noqa: ASYNC110 - polling a dict
                await asyncio.sleep(0.001)
            e2e_ms.append((handled[slug] - t0) * 1000)
    finally:
        p.sagas.inject = None
        await consumer.close()
        await p.messaging.close()
        import aio_pika

        conn = await aio_pika.connect(p.messaging.settings.amqp_url)
        ch = await conn.channel()
        await ch.queue_delete(f"{prefix}.welcome")
        await ch.exchange_delete(f"{prefix}.platform")
        await conn.close()
    breakdown = [
        [
            f"step {name} (incl. its state writes)",
            len(v),
            f"{statistics.median(v):.1f} ms",
            f"{pct(v, 0.99):.1f} ms",
            "-",
        ]
        for name, v in steps.items()
    ]
    return [
        *breakdown,
        [
            "onboarding saga (6 steps: shared tenant, chart of accounts, argon2 admin)",
            len(saga_ms),
            f"{statistics.median(saga_ms):.0f} ms",
            f"{pct(saga_ms, 0.99):.0f} ms",
            load(),
        ],
        [
            "saga start → welcome event handled over RabbitMQ",
            len(e2e_ms),
            f"{statistics.median(e2e_ms):.0f} ms",
            f"{pct(e2e_ms, 0.99):.0f} ms",
            load(),
        ],
    ]


async def main() -> None:
    url = bench_database_url("messaging")
    settings = load_settings(
        None,
        database={"url": url, "pool_max": 12},
        messaging={
            "relay_in_process": False,
            "poll_interval_s": 1.0,
            "relay_concurrency": 4,
            "amqp_url": os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        },
    )
    # identity needs audit; the ledger contributes the saga's chart_of_accounts step.
    mods = [m for m in discover() if m.name in ("audit", "identity", "ledger")]
    p = Platform.build(settings, mods)
    assert (await p.prepare()).ok
    await p.start(listen=False)
    started = time.perf_counter()
    try:
        tenants = [
            (
                await p.provisioner.create(ProvisionRequest(f"mb-{i}", "T", IsolationMode.SHARED))
            ).tenant
            for i in range(4)
        ]
        print(
            table(
                "In-process dispatch (per message, best of 3 x 20,000)",
                ["path", "time", "overhead", "load"],
                await bench_dispatch(p, tenants[0]),
            )
        )
        print(
            table(
                "Outbox relay (1 relay, 4 tenants; lag = commit → handled)",
                ["figure", "offered (achieved)", "delivered", "lag p50", "lag p99", "load"],
                await bench_outbox(p, tenants),
            )
        )
        print(
            table(
                "Onboarding saga over RabbitMQ",
                ["figure", "n", "p50", "p99", "load"],
                await bench_saga(p, f"tenantry-bench-{secrets.token_hex(3)}"),
            )
        )
        print(
            f"\n(total {time.perf_counter() - started:.0f} s; "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
        )
    finally:
        dbs = [t.database for t in await p.catalog.all() if t.database]
        await p.close()
        admin = await asyncpg.connect(admin_dsn(p.db, database="postgres"))
        for name in [*dbs, p.db.main_database]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
