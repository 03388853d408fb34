"""A test-only export source: a tenant-owned table with RLS, in its own schema of the main
database (outside the managed schemas, so the isolation suite's table discovery ignores it).
Used until the ledger's sources land on main."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tenantry.capabilities.export.sources import Column, Source, export_sources
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.sql import TENANT_EXPR
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import Tenant

COLUMNS = (
    Column("id", "int"),
    Column("name"),
    Column("amount", "numeric", scale=2),
    Column("qty", "int"),
    Column("ok", "bool"),
    Column("at", "timestamptz"),
    Column("day", "date"),
    Column("ref", "uuid"),
)
QUERY = "SELECT id, name, amount, qty, ok, at, day, ref FROM export_fixture.items"
ITEMS = Source("fixture.items", QUERY, COLUMNS, ("id",), title="Fixture items")
# Slow on purpose (about 3 ms a row) so a worker can be killed in the middle of an export.
SLOW = Source(
    "fixture.slow_items",
    "SELECT i.* FROM (" + QUERY + ") i CROSS JOIN LATERAL (SELECT pg_sleep(0.003 + 0 * i.id)) s",
    COLUMNS,
    ("id",),
)


def schema_sql(app_role: str) -> list[str]:
    t = "export_fixture.items"
    using = f"tenant_id = {TENANT_EXPR}"
    return [
        "CREATE SCHEMA IF NOT EXISTS export_fixture",
        f"""CREATE TABLE IF NOT EXISTS {t} (
            tenant_id uuid NOT NULL, id bigint NOT NULL, name text NOT NULL,
            amount numeric(12, 2), qty integer, ok boolean, at timestamptz, day date, ref uuid,
            PRIMARY KEY (tenant_id, id))""",
        f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tenant_isolation ON {t}",
        f"CREATE POLICY tenant_isolation ON {t} AS RESTRICTIVE FOR ALL TO PUBLIC "
        f"USING ({using}) WITH CHECK ({using})",
        f"DROP POLICY IF EXISTS app_access ON {t}",
        f'CREATE POLICY app_access ON {t} AS PERMISSIVE FOR ALL TO "{app_role}" USING (true)',
        f'GRANT USAGE ON SCHEMA export_fixture TO "{app_role}"',
        f'GRANT SELECT ON {t} TO "{app_role}"',
    ]


def register(platform: Platform) -> None:
    reg = export_sources(platform)
    reg.register(ITEMS)
    reg.register(SLOW)


def rows_for(tenant: Tenant, n: int, tag: str) -> list[tuple[Any, ...]]:
    """Rows with awkward values: separators, quotes, newlines, unicode, NULLs, negatives."""
    base = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    awkward = ['comma, "quoted"', "line\nbreak", "ünïcödé ✓", "=1+1", "  spaced  ", "tab\there"]
    out = []
    for i in range(1, n + 1):
        name = f"{tag}-{i}" if i % 7 else f"{tag}-{i} {awkward[i % len(awkward)]}"
        out.append(
            (
                tenant.id,
                i,
                name,
                None if i % 11 == 0 else Decimal(i * 37 % 10_000) / 4 - 500,
                None if i % 13 == 0 else i * 3,
                None if i % 17 == 0 else i % 2 == 0,
                base + timedelta(minutes=i, microseconds=i * 7),
                date(2026, 1, 1) + timedelta(days=i % 300),
                uuid.UUID(int=i * 7919 + 1),
            )
        )
    return out


INSERT = (
    "INSERT INTO export_fixture.items (tenant_id, id, name, amount, qty, ok, at, day, ref) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


async def seed_items(platform: Platform, tenant: Tenant, n: int, tag: str) -> None:
    async with admin_connection(platform.db, as_owner=False) as conn:
        await conn.executemany(INSERT, rows_for(tenant, n, tag))
