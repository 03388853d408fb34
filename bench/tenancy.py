"""Tenant onboarding and migration fan-out (DESIGN.md §8 "tenant onboarding").

    .venv/bin/python -m bench.tenancy [N]      # N schema tenants, default 1000

In one run: provisioning time per isolation mode (p50/p95 over a sample), then a no-op
`migrate` over the platform, the shared schema and N schema tenants, then the same run with
one new tenant migration (a CREATE TABLE with tenant_id, so RLS is applied in every store).
Baseline: one `SELECT 1` round trip per store on the same connection (the floor of visiting
N stores).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import asyncpg

from bench._common import bench_database_url, table
from tenantry.kernel.config import load_settings
from tenantry.kernel.db.dsn import database_of, with_database
from tenantry.kernel.db.migrator import Migration, Migrator
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main(n: int) -> None:
    url = bench_database_url("tenancy")
    p = Platform.build(load_settings(None, database={"url": url, "pool_max": 8}), discover())
    assert (await p.prepare()).ok
    await p.start(listen=False)
    rows: list[list[object]] = []
    try:
        for mode, count in (
            (IsolationMode.SHARED, 30),
            (IsolationMode.SCHEMA, 30),
            (IsolationMode.DATABASE, 5),
        ):
            times = []
            for i in range(count):
                t0 = time.perf_counter()
                await p.provisioner.create(
                    ProvisionRequest(
                        f"on-{mode.value[:2]}-{i}",
                        "T",
                        mode,
                        options={
                            "admin_email": f"a@{mode.value}{i}.test",
                            "admin_password": "onboarding-bench-pw",
                        },
                    )
                )
                times.append((time.perf_counter() - t0) * 1000)
            rows.append(
                [
                    f"provision one {mode.value} tenant (incl. admin user)",
                    count,
                    f"{statistics.median(times):.0f} ms",
                    f"{pct(times, 0.95):.0f} ms",
                ]
            )
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(4)

        async def make(i: int) -> None:
            async with sem:
                await p.provisioner.create(ProvisionRequest(f"bulk-{i}", "T", IsolationMode.SCHEMA))

        existing = 30
        await asyncio.gather(*(make(i) for i in range(max(0, n - existing))))
        bulk_s = time.perf_counter() - t0
        tenants = await p.catalog.all()
        schema_tenants = sum(1 for t in tenants if t.isolation is IsolationMode.SCHEMA)
        rows.append(
            [
                f"create {n - existing} more schema tenants (4 at a time)",
                n - existing,
                f"{bulk_s:.1f} s total",
                "-",
            ]
        )

        async with admin_connection(p.db, as_owner=False) as conn:
            t0 = time.perf_counter()
            for _ in range(len(tenants) + 2):
                await conn.fetchval("SELECT 1")
            floor = time.perf_counter() - t0
        rows.append(
            [
                f"baseline: {len(tenants) + 2} round trips of SELECT 1",
                1,
                f"{floor * 1000:.0f} ms",
                "-",
            ]
        )

        t0 = time.perf_counter()
        report = await p.migrator.migrate_all(tenants)
        noop = time.perf_counter() - t0
        assert report.ok
        assert report.applied_count == 0
        rows.append(
            [
                f"migrate, nothing to do ({report.stores} stores, {schema_tenants} schema tenants)",
                1,
                f"{noop:.2f} s",
                "-",
            ]
        )

        extra = Migration(
            "benchmod",
            "tenant",
            1,
            "new_table",
            "CREATE TABLE bench_new (tenant_id uuid NOT NULL, id bigint, "
            "PRIMARY KEY (tenant_id, id))",
        )
        migrator = Migrator(
            p.db,
            [*p.migrator.migrations, extra],
            ["kernel", *(m.name for m in p.modules), "benchmod"],
        )
        t0 = time.perf_counter()
        report = await migrator.migrate_all(tenants)
        one = time.perf_counter() - t0
        assert report.ok, report.failed
        rows.append(
            [
                f"migrate, one new tenant table ({report.applied_count} stores changed)",
                1,
                f"{one:.2f} s",
                "-",
            ]
        )
    finally:
        await p.close()
        conn = await asyncpg.connect(with_database(url, "postgres"))
        dbs = [
            r[0]
            for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'tenantry_t_on_da_%'"
            )
        ]
        for name in [*dbs, database_of(url)]:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    print(
        table("Tenant onboarding and migration fan-out", ["case", "n", "p50 / total", "p95"], rows)
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
