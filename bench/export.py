"""Exports (issue 7, DESIGN.md §8 "export 1M rows").

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.export

In one run, over 100k and 1M rows of a ledger-entries-shaped table (tenant-owned, RLS on, 8
columns: bigint, uuid, text, numeric, text, timestamptz, text, date), read as one tenant:
- baseline: ``COPY (export query) TO STDOUT`` in a REPEATABLE READ unit of work, bytes
  discarded (the physical floor);
- our CSV, XLSX, Parquet and PDF (100k only): the real export job (count + write + atomic
  publish), each in a fresh worker process that reports its own peak RSS.
plus, at 100k, the same rows through xlsxwriter's ``constant_memory`` mode as the XLSX
reference. XLSX at 1M rows runs by default; ``--quick`` extrapolates it from 200k (said so).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any
from uuid import UUID

from bench._common import bench_database_url, table
from tenantry.capabilities.export.filters import compile_filters, select_sql
from tenantry.capabilities.export.service import ExportService
from tenantry.capabilities.export.sources import Column, Source, export_sources
from tenantry.kernel.config import load_settings
from tenantry.kernel.db.dsn import with_database
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.sql import TENANT_EXPR
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

MAX_ROWS = 1_000_000
SOURCE = Source(
    "bench.entries",
    "SELECT id, account_id, direction, amount, currency, posted_at, description, value_date "
    "FROM bench_fixture.entries",
    (
        Column("id", "int"),
        Column("account_id", "uuid"),
        Column("direction"),
        Column("amount", "numeric", scale=2),
        Column("currency"),
        Column("posted_at", "timestamptz"),
        Column("description", width=30),
        Column("value_date", "date"),
    ),
    ("id",),
    title="Ledger entries (bench)",
)
T = "bench_fixture.entries"
SETUP = [
    "CREATE SCHEMA IF NOT EXISTS bench_fixture",
    f"""CREATE TABLE {T} (tenant_id uuid NOT NULL, id bigint NOT NULL, account_id uuid NOT NULL,
        direction text NOT NULL, amount numeric(14, 2) NOT NULL, currency text NOT NULL,
        posted_at timestamptz NOT NULL, description text, value_date date NOT NULL,
        PRIMARY KEY (tenant_id, id))""",
    f"ALTER TABLE {T} ENABLE ROW LEVEL SECURITY",
    f"ALTER TABLE {T} FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY tenant_isolation ON {T} AS RESTRICTIVE FOR ALL TO PUBLIC "
    f"USING (tenant_id = {TENANT_EXPR})",
    f'CREATE POLICY app_access ON {T} AS PERMISSIVE FOR ALL TO "{{app}}" USING (true)',
    'GRANT USAGE ON SCHEMA bench_fixture TO "{app}"',
    f'GRANT SELECT ON {T} TO "{{app}}"',
]
FILL = f"""
INSERT INTO {T}
SELECT $1, g, md5((g % 500)::text)::uuid, CASE WHEN g % 2 = 0 THEN 'debit' ELSE 'credit' END,
       round((random() * 100000)::numeric, 2), 'EUR',
       timestamptz '2026-01-01' + g * interval '17 second',
       'entry ' || g || ' for invoice INV-' || (g * 7 % 100000), date '2026-01-01' + (g % 365)::int
FROM generate_series($2::bigint, $3::bigint) g
"""


def filters(n: int) -> dict[str, Any]:
    return {"filters": [{"field": "id", "op": "lte", "value": n}]}


async def build(url: str, storage: str) -> Platform:
    settings = load_settings(
        None,
        database={"url": url, "pool_max": 4},
        exports={"storage_path": storage},
        jobs={"lease_s": 120},
    )
    p = Platform.build(settings, discover())
    await p.start(listen=False)
    export_sources(p).register(SOURCE)
    return p


async def xlsxwriter_reference(p: Platform, rows: int, path: str) -> dict[str, Any]:
    """The reference: the same rows through xlsxwriter's constant_memory mode (write_row)."""
    import xlsxwriter

    tenant = await p.catalog.by_slug("bench")
    assert tenant is not None
    f = compile_filters(filters(rows), SOURCE)
    sql = select_sql(SOURCE, [c.name for c in SOURCE.columns], f)
    started = time.perf_counter()
    wb = xlsxwriter.Workbook(path, {"constant_memory": True, "remove_timezone": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, [c.name for c in SOURCE.columns])
    dt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    ws.set_column(5, 5, None, dt)
    ws.set_column(7, 7, None, dt)
    r = 1
    with tenant_scope(tenant):
        async with p.db.unit_of_work(readonly=True, isolation="repeatable_read") as uow:
            cur = await uow.cursor(sql, *f.params)
            while batch := await cur.fetch(10_000):
                for rec in batch:
                    ws.write_row(r, 0, [str(v) if isinstance(v, UUID) else v for v in rec])
                    r += 1
    wb.close()
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = await asyncio.to_thread(os.path.getsize, path)
    return {"s": seconds, "rows": r - 1, "bytes": size, "rss_mb": rss}


async def child(cfg: dict[str, Any]) -> None:
    """One export job in this (fresh) process; prints seconds, bytes and peak RSS."""
    p = await build(cfg["url"], cfg["storage"])
    if cfg["format"] == "xlsxwriter":
        try:
            out = await xlsxwriter_reference(p, cfg["rows"], cfg["storage"] + "/ref.xlsx")
            print(json.dumps(out))
        finally:
            await p.close()
        return
    try:
        tenant = await p.catalog.by_slug("bench")
        assert tenant is not None
        service = p.use(ExportService)
        with tenant_scope(tenant):
            from tenantry.capabilities.export.service import ExportRequest

            req = ExportRequest(SOURCE.name, cfg["format"], None, filters(cfg["rows"]), None)
            export, _ = await service.create(req, None)
        started = time.perf_counter()
        await p.jobs.run_pending([tenant])
        seconds = time.perf_counter() - started
        with tenant_scope(tenant):
            done = await service.get(export["id"])
        assert done["status"] == "succeeded", done
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps(
                {"s": seconds, "rows": done["rows_total"], "bytes": done["bytes"], "rss_mb": rss}
            )
        )
    finally:
        await p.close()


def run_child(url: str, storage: str, fmt: str, rows: int) -> dict[str, Any]:
    cfg = json.dumps({"url": url, "storage": storage, "format": fmt, "rows": rows})
    out = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", cfg],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if out.returncode != 0:
        raise SystemExit(f"{fmt} {rows}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def copy_baseline(p: Platform, rows: int) -> tuple[float, int]:
    tenant = await p.catalog.by_slug("bench")
    assert tenant is not None
    f = compile_filters(filters(rows), SOURCE)
    sql = select_sql(SOURCE, [c.name for c in SOURCE.columns], f)
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)

    with tenant_scope(tenant):
        started = time.perf_counter()
        async with p.db.unit_of_work(readonly=True, isolation="repeatable_read") as uow:
            await uow.copy_from_query(sql, *f.params, output=sink, format="csv", header=True)
        return time.perf_counter() - started, size


async def main(quick: bool) -> None:
    url = bench_database_url("export")
    storage = tempfile.mkdtemp(prefix="tenantry-bench-exports-")
    t0 = time.perf_counter()
    p = Platform.build(load_settings(None, database={"url": url}), discover())
    assert (await p.prepare()).ok
    await p.start(listen=False)
    tenant = (
        await p.provisioner.create(
            ProvisionRequest("bench", "Bench", IsolationMode.SHARED, "enterprise")
        )
    ).tenant
    app = p.settings.database.app_user
    async with admin_connection(p.db, as_owner=False) as conn:
        for stmt in SETUP:
            await conn.execute(stmt.replace("{app}", app))
        for lo in range(1, MAX_ROWS + 1, 250_000):
            await conn.execute(FILL, tenant.id, lo, min(MAX_ROWS, lo + 249_999))
        await conn.execute(f"VACUUM ANALYZE {T}")
    print(
        f"setup (migrate, tenant, {MAX_ROWS:,} rows): {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    rows_out: list[list[object]] = []
    try:
        for n in (100_000, MAX_ROWS):
            base_s, base_bytes = await copy_baseline(p, n)
            base_rate = n / base_s
            rows_out.append(
                [
                    f"{n:,}",
                    "COPY TO STDOUT (baseline)",
                    f"{base_s:.2f}",
                    f"{base_rate:,.0f}",
                    "100 %",
                    f"{base_bytes / 1e6:.1f}",
                    "-",
                ]
            )
            formats = ["csv", "parquet", "xlsx"] + (["pdf", "xlsxwriter"] if n == 100_000 else [])
            for fmt in formats:
                if fmt == "xlsx" and n == MAX_ROWS and quick:
                    r = run_child(url, storage, fmt, 200_000)
                    est = r["s"] * 5
                    rows_out.append(
                        [
                            f"{n:,}",
                            "xlsx (extrapolated x5 from 200k)",
                            f"~{est:.1f}",
                            f"{200_000 / r['s']:,.0f}",
                            f"{200_000 / r['s'] / base_rate:.0%}",
                            "-",
                            f"{r['rss_mb']:.0f} (200k)",
                        ]
                    )
                    continue
                r = run_child(url, storage, fmt, n)
                print(f"  {fmt} {n:,}: {r['s']:.1f}s", file=sys.stderr)
                rate = r["rows"] / r["s"]
                label = "xlsxwriter constant_memory (reference)" if fmt == "xlsxwriter" else fmt
                rows_out.append(
                    [
                        f"{n:,}",
                        label,
                        f"{r['s']:.2f}",
                        f"{rate:,.0f}",
                        f"{rate / base_rate:.0%}",
                        f"{r['bytes'] / 1e6:.1f}",
                        f"{r['rss_mb']:.0f}",
                    ]
                )
    finally:
        await p.close()
        import asyncpg

        admin = await asyncpg.connect(with_database(url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        import shutil

        shutil.rmtree(storage, ignore_errors=True)
    print(
        table(
            "Exports (one tenant, RLS on; export job = count + write + atomic publish)",
            ["rows", "what", "seconds", "rows/s", "vs COPY", "MB", "peak RSS MB"],
            rows_out,
        )
    )
    print(f"total bench time: {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        asyncio.run(child(json.loads(sys.argv[2])))
    else:
        asyncio.run(main("--quick" in sys.argv))
