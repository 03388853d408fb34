"""Versioned migrations per module, fanned out to every store, safe to run concurrently.

A module ships ``migrations/platform/NNNN_name.sql`` (the platform schema of the main
database) and ``migrations/tenant/NNNN_name.sql`` (every tenant store: the shared schema,
each schema-mode tenant's schema, each database-mode tenant's database). Tenant migrations
use unqualified names; the runner sets the search_path to the store's schema.

Each store records what it applied (``schema_migrations`` in that schema: the source's name,
e.g. ``kernel`` or ``ledger``, the version, the file's name and a checksum of its text; never
the package the file was read from, so moving a ``migrations`` package re-runs nothing), so a
run with nothing to do costs one small query per store. A store is migrated in one transaction that
first takes an advisory lock on the store (so concurrent runs serialize and the second finds
nothing to do), with a ``lock_timeout`` on the DDL so a migration never hangs production
behind a long transaction. A failed store is reported by name; the others go on, and a new
run resumes where the failed one stopped. Written here rather than with Alembic because the
fan-out over schemas and databases, per-store state and RLS post-processing are the point.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

import asyncpg

from tenantry.kernel.db import sql as q
from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.rls import ensure_rls
from tenantry.kernel.db.uow import PLATFORM_SCHEMA
from tenantry.kernel.errors import MigrationError
from tenantry.kernel.tenancy.model import SHARED_SCHEMA, Tenant

Scope = Literal["platform", "tenant"]
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    module: str
    scope: Scope
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def load_migrations(module: str, package: str | None) -> list[Migration]:
    """Read ``<package>/platform/*.sql`` and ``<package>/tenant/*.sql`` as ``module``'s
    migrations (``module`` is what the stores record; ``package`` is only where to read)."""
    if package is None:
        return []
    found: list[Migration] = []
    root = resources.files(package)
    for scope in ("platform", "tenant"):
        folder = root.joinpath(scope)
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            m = _FILE.match(entry.name)
            if not m:
                raise MigrationError(
                    f"{module}: migration file {entry.name!r} must be named NNNN_name.sql"
                )
            found.append(
                Migration(module, scope, int(m.group(1)), m.group(2), entry.read_text("utf-8"))
            )
    seen: set[tuple[str, int]] = set()
    for mig in found:
        if (mig.scope, mig.version) in seen:
            raise MigrationError(f"{module}: two {mig.scope} migrations numbered {mig.version}")
        seen.add((mig.scope, mig.version))
    return found


@dataclass(frozen=True, slots=True)
class Store:
    """One place migrations are applied to."""

    label: str
    scope: Scope
    server: str
    database: str | None
    schema: str

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> Store:
        label = f"tenant {tenant.slug} ({tenant.isolation})"
        return cls(label, "tenant", tenant.server, tenant.database, tenant.schema)


@dataclass
class MigrationReport:
    applied: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    stores: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def applied_count(self) -> int:
        return sum(len(v) for v in self.applied.values())


Progress = Callable[[Store, list[str]], None]


class Migrator:
    def __init__(self, db: Database, migrations: Iterable[Migration], module_order: list[str]):
        self.db = db
        rank = {name: i for i, name in enumerate(module_order)}
        self.migrations = sorted(migrations, key=lambda m: (rank.get(m.module, 1 << 30), m.version))

    def for_scope(self, scope: Scope) -> list[Migration]:
        return [m for m in self.migrations if m.scope == scope]

    def _render(self, sql: str) -> str:
        """Substitute the configured role names (validated identifiers) into a migration."""
        s = self.db.settings
        return sql.replace("${app_role}", f'"{s.app_user}"').replace(
            "${owner_role}", f'"{s.owner_role}"'
        )

    # -- the stores -------------------------------------------------------------------------
    @staticmethod
    def platform_store() -> Store:
        return Store("platform", "platform", "default", None, PLATFORM_SCHEMA)

    @staticmethod
    def shared_store(server: str = "default", database: str | None = None) -> Store:
        label = "shared schema" if database is None else f"shared schema of {database}"
        return Store(label, "tenant", server, database, SHARED_SCHEMA)

    # -- running ----------------------------------------------------------------------------
    async def migrate_store(
        self, store: Store, conn: asyncpg.Connection | None = None
    ) -> list[str]:
        """Apply what ``store`` lacks; return the names applied. Raises on failure."""
        if conn is None:
            async with admin_connection(self.db, store.server, store.database) as own:
                return await self._migrate(store, own)
        return await self._migrate(store, conn)

    async def _migrate(self, store: Store, conn: asyncpg.Connection) -> list[str]:
        wanted = self.for_scope(store.scope)
        table = f"{store.schema}.schema_migrations"
        # Fast path without locks: nothing pending, RLS already verified by earlier runs.
        if await conn.fetchval(q.MIGRATIONS_TABLE_EXISTS, table):
            async with conn.transaction():
                await conn.execute(q.SET_SEARCH_PATH, store.schema)
                applied = {(r["module"], r["version"]) for r in await conn.fetch(q.APPLIED)}
            if all((m.module, m.version) in applied for m in wanted):
                return []
        done: list[str] = []
        async with conn.transaction():
            await conn.execute(q.SET_LOCK_TIMEOUT, "120s")
            key = f"{store.server}/{store.database or ''}/{store.schema}"
            await conn.execute(q.ADVISORY_LOCK, key)
            await conn.execute(q.SET_LOCK_TIMEOUT, f"{self.db.settings.lock_timeout_ms}ms")
            await conn.execute(
                f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'
                f' AUTHORIZATION "{self.db.settings.owner_role}"'
            )
            await conn.execute(
                f'GRANT USAGE ON SCHEMA "{store.schema}" TO "{self.db.settings.app_user}"'
            )
            await conn.execute(q.SET_SEARCH_PATH, store.schema)
            await conn.execute(q.CREATE_MIGRATIONS_TABLE)
            rows = await conn.fetch(q.APPLIED)
            applied_sums = {(r["module"], r["version"]): r["checksum"] for r in rows}
            for mig in wanted:
                key2 = (mig.module, mig.version)
                if key2 in applied_sums:
                    if applied_sums[key2] != mig.checksum:
                        raise MigrationError(
                            f"{store.label}: {mig.module} {mig.scope} migration "
                            f"{mig.version:04d}_{mig.name} was edited after it was applied"
                        )
                    continue
                try:
                    await conn.execute(self._render(mig.sql))
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"{store.label}: {mig.module} {mig.version:04d}_{mig.name} failed: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                await conn.execute(
                    q.RECORD_MIGRATION, mig.module, mig.version, mig.name, mig.checksum
                )
                done.append(f"{mig.module}/{mig.version:04d}_{mig.name}")
            await ensure_rls(conn, [store.schema], self.db.settings.app_user)
        if done:
            tenant_filter.forget()  # new tables may hold tenant_id: reloaded on next use
        return done

    async def migrate_all(
        self, tenants: Iterable[Tenant], progress: Progress | None = None
    ) -> MigrationReport:
        """Platform first, then the shared schema, then every schema and database tenant."""
        report = MigrationReport()
        stores = [self.platform_store(), self.shared_store()]
        for t in tenants:
            if t.database is not None or t.schema != SHARED_SCHEMA:
                stores.append(Store.for_tenant(t))
        report.stores = len(stores)
        # Stores in the main database share one admin connection; others get their own.
        async with admin_connection(self.db) as main:
            for store in stores:
                try:
                    if store.database is None and store.server == "default":
                        names = await self._migrate(store, main)
                    else:
                        names = await self.migrate_store(store)
                except (MigrationError, asyncpg.PostgresError, OSError) as exc:
                    report.failed[store.label] = str(exc)
                    if store.scope == "platform":
                        break  # nothing else can be trusted before the platform schema
                    continue
                if names:
                    report.applied[store.label] = names
                if progress:
                    progress(store, names)
        return report

    async def pending_count(self, tenants: Iterable[Tenant]) -> int:
        """How many (store, migration) pairs are not applied yet, over every store."""
        stores = [self.platform_store(), self.shared_store()]
        stores += [
            Store.for_tenant(t)
            for t in tenants
            if t.database is not None or t.schema != SHARED_SCHEMA
        ]
        missing = 0
        async with admin_connection(self.db, as_owner=False) as main:
            for store in stores:
                if store.database is None and store.server == "default":
                    missing += await self._missing(store, main)
                else:
                    async with admin_connection(
                        self.db, store.server, store.database, as_owner=False
                    ) as conn:
                        missing += await self._missing(store, conn)
        return missing

    async def _missing(self, store: Store, conn: asyncpg.Connection) -> int:
        wanted = {(m.module, m.version) for m in self.for_scope(store.scope)}
        if not await conn.fetchval(q.MIGRATIONS_TABLE_EXISTS, f"{store.schema}.schema_migrations"):
            return len(wanted)
        async with conn.transaction():
            await conn.execute(q.SET_SEARCH_PATH, store.schema)
            have = {(r["module"], r["version"]) for r in await conn.fetch(q.APPLIED)}
        return len(wanted - have)
