"""Row-level security: applying the tenant policies, and the start-up self-check.

A tenant-owned table is any table (partitioned tables and each of their partitions included) in
a platform-managed schema (``tenantry``,
``tenant_shared``, ``tenant_*``, in the main database or a tenant's own database) that has a
``tenant_id`` column. Migrations do not write policies by hand: after a store is migrated,
``ensure_rls`` gives every tenant-owned table that lacks it RLS ENABLED + FORCED, a RESTRICTIVE
tenant policy (to PUBLIC, so no role but a superuser escapes it) beside a PERMISSIVE grant to
the application role, and table privileges for that role. New tables are picked up by being
created, not by being remembered.

Platform tables (schema ``tenantry``) with a tenant_id (memberships, API clients) also admit
transactions in explicit platform scope (``app.scope = 'platform'``): login and "list my
tenants" read across a person's tenants. Tenant stores never admit platform scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from tenantry.kernel.db.sql import (
    OWNED_BY_APP_SQL,
    PLATFORM_EXPR,
    ROLE_SQL,
    TENANT_EXPR,
    TENANT_TABLES_SQL,
)
from tenantry.kernel.db.uow import PLATFORM_SCHEMA
from tenantry.kernel.errors import SelfCheckError


@dataclass(frozen=True, slots=True)
class TableState:
    schema: str
    table: str
    enabled: bool
    forced: bool
    owner: str
    has_policy: bool
    has_grant_policy: bool
    #: A partition of a partitioned table: queries through the parent use the parent's
    #: policies, but a partition can be named directly, so it carries its own as well.
    partition: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def safe(self) -> bool:
        return self.enabled and self.forced and self.has_policy and self.has_grant_policy


async def tenant_tables(
    conn: asyncpg.Connection, schemas: list[str] | None = None
) -> list[TableState]:
    rows = await conn.fetch(TENANT_TABLES_SQL, schemas)
    return [TableState(**dict(r)) for r in rows]


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


async def ensure_rls(conn: asyncpg.Connection, schemas: list[str], app_role: str) -> list[str]:
    """Give every tenant-owned table in ``schemas`` its policies; return the tables fixed.

    Idempotent and cheap when nothing is missing (one catalog query, no DDL, no locks).
    Identifiers come from the catalog and the validated settings, never from a request.
    """
    fixed = []
    for t in await tenant_tables(conn, schemas):
        table = f"{_q(t.schema)}.{_q(t.table)}"
        grant = (
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {_q(app_role)}"
            if t.schema != PLATFORM_SCHEMA
            else None
        )
        if t.safe:
            if grant:
                await conn.execute(grant)
            continue
        check = TENANT_EXPR
        using = f"tenant_id = {check}"
        if t.schema == PLATFORM_SCHEMA:
            using = f"({using} OR {PLATFORM_EXPR})"
        statements = [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
            f"CREATE POLICY tenant_isolation ON {table} AS RESTRICTIVE FOR ALL TO PUBLIC "
            f"USING ({using}) WITH CHECK ({using})",
            f"DROP POLICY IF EXISTS app_access ON {table}",
            f"CREATE POLICY app_access ON {table} AS PERMISSIVE FOR ALL TO {_q(app_role)} "
            "USING (true) WITH CHECK (true)",
        ]
        if grant:
            statements.append(grant)
        for stmt in statements:
            await conn.execute(stmt)
        fixed.append(t.qualified)
    return fixed


async def self_check(
    conn: asyncpg.Connection, app_role: str, owner_role: str, where: str = "main database"
) -> list[str]:
    """Every reason the database is unsafe to serve from; empty when it is safe."""
    problems: list[str] = []
    role = await conn.fetchrow(ROLE_SQL, app_role, owner_role)
    if role is None:
        problems.append(f"{where}: application role {app_role!r} or owner {owner_role!r} missing")
    else:
        if role["rolsuper"]:
            problems.append(f"{where}: application role {app_role!r} is SUPERUSER")
        if role["rolbypassrls"]:
            problems.append(f"{where}: application role {app_role!r} has BYPASSRLS")
        if role["member_of_owner"]:
            problems.append(f"{where}: application role {app_role!r} is a member of {owner_role!r}")
    for name in await conn.fetch(OWNED_BY_APP_SQL, app_role):
        problems.append(f"{where}: application role {app_role!r} owns {name[0]}")
    for t in await tenant_tables(conn):
        missing = [
            label
            for label, ok in (
                ("RLS not enabled", t.enabled),
                ("RLS not forced", t.forced),
                ("no restrictive tenant_isolation policy", t.has_policy),
                ("no app_access policy", t.has_grant_policy),
            )
            if not ok
        ]
        if missing:
            problems.append(f"{where}: table {t.qualified}: {', '.join(missing)}")
        if t.owner == app_role:
            problems.append(f"{where}: table {t.qualified} is owned by the application role")
    return problems


def raise_if_unsafe(problems: list[str]) -> None:
    if problems:
        raise SelfCheckError(
            "refusing to start: the database is not safe to serve from:\n  - "
            + "\n  - ".join(problems)
        )
