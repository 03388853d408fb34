"""What the tenant filter costs per call (kernel/db/tenant_filter), beside the bare call.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m bench.tenant_filter

(a) in process: ``TenantFilter.rewrite`` on a cache hit and the unit of work's ``_filtered``
    (hit + the tenant appended to the arguments) beside a bare ``dict.get``; the first
    rewrite of a text (a miss: sqlglot parse and generation) for scale;
(b) one real round trip: ``uow.fetchrow`` of an account by id through a tenant unit of work
    with the filter (``WHERE id = $1 AND tenant_id = $2``) beside the same call with the
    filter switched off (``WHERE id = $1``, RLS alone), alternating rounds in one run.
Uses its own database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import timeit
import uuid

import asyncpg

from bench._common import bench_database_url, table
from tenantry.kernel.config import load_settings
from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.dsn import database_of, with_database
from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_ledger.infrastructure import sql

CALLS = 2000
ROUNDS = 7


def in_process(tf: tenant_filter.TenantFilter, tenant: Tenant) -> list[list[object]]:
    text = sql.GET_ACCOUNT
    tf.rewrite(text)
    cache = {text: 1}
    n = 1_000_000
    hit = min(timeit.repeat(lambda: tf.rewrite(text), number=n, repeat=5)) / n
    bare = min(timeit.repeat(lambda: cache.get(text), number=n, repeat=5)) / n

    u = UnitOfWork(None, tenant, None)  # type: ignore[arg-type]  # no SQL is sent
    args = (uuid.uuid4(),)
    step = min(timeit.repeat(lambda: u._filtered(text, args), number=n, repeat=5)) / n
    misses: dict[str, list[float]] = {"GET_ACCOUNT": [], "WRITE": []}
    for i in range(100):
        name = "WRITE" if i % 2 else "GET_ACCOUNT"
        fresh = tenant_filter.TenantFilter(tf.tables)
        t0 = time.perf_counter()
        fresh.rewrite(getattr(sql, name))
        misses[name].append(time.perf_counter() - t0)
    return [
        ["rewrite, cache hit", f"{hit * 1e9:.0f} ns"],
        ["bare dict.get (same key)", f"{bare * 1e9:.0f} ns"],
        ["unit of work's _filtered (hit + append the tenant id)", f"{step * 1e9:.0f} ns"],
        *(
            [f"first rewrite of {name} (a miss: sqlglot, once per text)", f"{ms:.2f} ms"]
            for name, t in misses.items()
            if (ms := statistics.median(t) * 1e3)
        ),
    ]


async def round_trips(url: str) -> list[list[object]]:
    platform = Platform.build(load_settings(None, database={"url": url}), discover())
    assert (await platform.prepare()).ok
    await platform.provisioner.create(ProvisionRequest("bench", "Bench", IsolationMode.SHARED))
    tenant = await platform.catalog.by_slug("bench")
    assert tenant is not None
    acc = uuid.uuid4()
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        await uow.execute(
            "INSERT INTO ledger_accounts (id, code, name, type, currency, allow_negative) VALUES"
            " ($1, 'b', 'b', 'asset', 'EUR', false)",
            acc,
        )
    tf = await platform.db.load_tenant_filter()
    rows = in_process(tf, tenant)
    on: list[float] = []
    off: list[float] = []
    try:
        for _ in range(ROUNDS):
            for label, store in (("on", on), ("off", off)):
                async with tenant_unit_of_work(platform.db, tenant) as uow:
                    for _ in range(200):  # warm the prepared statement and the plan
                        await uow.fetchrow(sql.GET_ACCOUNT, acc)
                    if label == "off":
                        with tenant_filter.switched_off():
                            t0 = time.perf_counter()
                            for _ in range(CALLS):
                                await uow.fetchrow(sql.GET_ACCOUNT, acc)
                            store.append((time.perf_counter() - t0) / CALLS)
                    else:
                        t0 = time.perf_counter()
                        for _ in range(CALLS):
                            await uow.fetchrow(sql.GET_ACCOUNT, acc)
                        store.append((time.perf_counter() - t0) / CALLS)
    finally:
        await platform.close()
    rows.append(
        [
            "uow.fetchrow(GET_ACCOUNT), filter on (median of rounds)",
            f"{statistics.median(on) * 1e6:.1f} µs",
        ]
    )
    rows.append(["the same, filter off (RLS alone)", f"{statistics.median(off) * 1e6:.1f} µs"])
    return rows


async def drop(url: str) -> None:
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_of(url)}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    url = bench_database_url("filter")
    try:
        rows = asyncio.run(round_trips(url))
    finally:
        asyncio.run(drop(url))
    print(table("Tenant filter, per call", ["case", "per call"], rows))


if __name__ == "__main__":
    main()
