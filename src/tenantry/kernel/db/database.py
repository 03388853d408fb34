"""Connection pools, one per (server, database), and the entry points to units of work.

The application connects as ``database.app_user``: a role with neither SUPERUSER nor
BYPASSRLS that owns no table. Migrations and provisioning connect with the admin URL
(``database.url``) and ``SET ROLE`` to the owner role, so every object is owned by the owner.
Pools for database-mode tenants are created on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import orjson

from tenantry.kernel.config import DatabaseSettings
from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.commit import CommitWriters
from tenantry.kernel.db.dsn import database_of, with_database, with_user
from tenantry.kernel.db.listener import Callback, NotifyListener
from tenantry.kernel.db.rls import TENANT_TABLES_SQL
from tenantry.kernel.db.uow import (
    PLATFORM_SCHEMA,
    Connection,
    IsolationLevel,
    UnitOfWork,
    begin_sql,
    pooled_transaction,
)
from tenantry.kernel.errors import ConfigError
from tenantry.kernel.tenancy.context import current_principal, require_tenant
from tenantry.kernel.tenancy.model import Tenant

Pool = asyncpg.Pool
#: A NOTIFY callback: (connection, backend pid, channel, payload).
Listener = Callback
#: Called with every new pooled connection (e.g. observability adds a query logger for spans).
CONNECTION_HOOKS: list[Callable[[asyncpg.Connection], None]] = []


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs every pooled connection gets: json/jsonb through orjson."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )
    for hook in CONNECTION_HOOKS:
        hook(conn)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to reset (see ``Database.new_pool``)."""


class Database:
    """Pools and admin connections for every server the platform uses."""

    def __init__(self, settings: DatabaseSettings, admin_url: str) -> None:
        self.settings = settings
        self.admin_url = admin_url
        self.main_database = database_of(admin_url)
        self._servers: dict[str, str] = {"default": admin_url}
        for name, server in settings.servers.items():
            self._servers[name] = server.url
        self._pools: dict[tuple[str, str], Pool] = {}
        self._lock = asyncio.Lock()
        self._listeners: dict[tuple[str, str], NotifyListener] = {}
        #: Seconds between keepalive probes of the LISTEN connections (kernel/db/listener).
        self.listen_keepalive_s = 10.0
        #: What units of work write at commit (outbox, audit): kernel/db/commit.
        self.commit_writers = CommitWriters()

    # -- URLs -------------------------------------------------------------------------------
    def server_url(self, server: str) -> str:
        try:
            return self._servers[server]
        except KeyError:
            raise ConfigError(
                f"database server {server!r} is not configured (database.servers.{server}.url)"
            ) from None

    def admin_dsn(self, server: str = "default", database: str | None = None) -> str:
        return with_database(self.server_url(server), database or self.main_database)

    def app_dsn(self, server: str = "default", database: str | None = None) -> str:
        s = self.settings
        return with_user(self.admin_dsn(server, database), s.app_user, s.app_password)

    @property
    def server_names(self) -> list[str]:
        return list(self._servers)

    # -- pools ------------------------------------------------------------------------------
    async def pool(self, server: str = "default", database: str | None = None) -> Pool:
        key = (server, database or self.main_database)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        async with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                s = self.settings
                main = key[1] == self.main_database and server == "default"
                pool = await self.new_pool(
                    server,
                    key[1],
                    min_size=s.pool_min if main else 0,
                    max_size=s.pool_max if main else max(2, s.pool_max // 4),
                )
                self._pools[key] = pool
        return pool

    async def new_pool(
        self, server: str, database: str | None, *, min_size: int, max_size: int
    ) -> Pool:
        """An application-role pool as units of work use it (tests use it with one connection).

        No session reset on release: asyncpg's default (``RESET ALL; CLOSE ALL; UNLISTEN *;
        pg_advisory_unlock_all()``) costs a round trip per unit of work, and buys nothing here,
        because every setting the platform makes is transaction-local (``set_config(...,
        true)``) and pooled connections never LISTEN, hold cursors or session locks. asyncpg
        still rolls back a transaction left open before our (empty) reset runs.
        """
        s = self.settings
        pool = await asyncpg.create_pool(
            self.app_dsn(server, database),
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            reset=_keep_session,
            server_settings={
                "application_name": "tenantry",
                "statement_timeout": str(s.statement_timeout_ms),
            },
        )
        assert pool is not None
        return pool

    # -- NOTIFY subscriptions -----------------------------------------------------------------
    def listener(self, server: str = "default", database: str | None = None) -> NotifyListener:
        """The process's one LISTEN connection to that database (kernel/db/listener: it
        re-connects with backoff and re-LISTENs on its own)."""
        key = (server, database or self.main_database)
        listener = self._listeners.get(key)
        if listener is None:
            listener = NotifyListener(
                self.app_dsn(server, key[1]),
                name=f"{server}/{key[1]}",
                keepalive_s=self.listen_keepalive_s,
            )
            self._listeners[key] = listener
        return listener

    async def listen(
        self,
        channel: str,
        callback: Listener,
        *,
        server: str = "default",
        database: str | None = None,
    ) -> None:
        """Subscribe ``callback`` to NOTIFY on ``channel`` (of the main database, or of
        ``database``). All subscribers of a process share one connection per database; after
        a re-connect each gets one notification with an empty payload (anything may have
        changed while it was down)."""
        await self.listener(server, database).subscribe(channel, callback)

    async def unlisten(
        self,
        channel: str,
        callback: Listener,
        *,
        server: str = "default",
        database: str | None = None,
    ) -> None:
        key = (server, database or self.main_database)
        listener = self._listeners.get(key)
        if listener is not None:
            await listener.unsubscribe(channel, callback)

    async def close(self) -> None:
        listeners, self._listeners = list(self._listeners.values()), {}
        for listener in listeners:
            await listener.close()
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    def pool_stats(self) -> dict[str, dict[str, int]]:
        return {
            f"{srv}/{db}": {"size": p.get_size(), "idle": p.get_idle_size()}
            for (srv, db), p in self._pools.items()
        }

    # -- units of work ----------------------------------------------------------------------
    async def load_tenant_filter(self) -> tenant_filter.TenantFilter:
        """The tenant filter's table set from the main database's catalog: every table with a
        tenant_id in a managed schema (rls.TENANT_TABLES_SQL, the definition RLS uses). Run
        once per process, by the first tenant unit of work, and again after migrations."""
        pool = await self.pool()
        rows = await pool.fetch(TENANT_TABLES_SQL, None)
        return tenant_filter.install({r["table"] for r in rows})

    async def _filter_ready(self) -> None:
        if tenant_filter.current() is None:
            await self.load_tenant_filter()

    @contextlib.asynccontextmanager
    async def unit_of_work(
        self, *, readonly: bool = False, isolation: IsolationLevel | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """A transaction in the current tenant's store with the tenant set transaction-locally
        (BEGIN and the settings in one round trip: ``uow.begin_sql``).

        ``isolation="repeatable_read"`` gives one consistent snapshot (exports)."""
        tenant = require_tenant()
        await self._filter_ready()
        pool = await self.pool(tenant.server, tenant.database)
        begin = begin_sql(tenant.id, tenant.schema, readonly=readonly, isolation=isolation)
        async with pooled_transaction(pool, begin) as conn:
            uow = UnitOfWork(conn, tenant, current_principal(), db=self)
            yield uow
            await uow.write_collected()  # before COMMIT, in this transaction

    @contextlib.asynccontextmanager
    async def tenant_unit_of_work(self, tenant: Tenant) -> AsyncIterator[UnitOfWork]:
        """A unit of work for an explicit tenant (CLI, provisioning); prefer ``tenant_scope``."""
        await self._filter_ready()
        pool = await self.pool(tenant.server, tenant.database)
        async with pooled_transaction(pool, begin_sql(tenant.id, tenant.schema)) as conn:
            uow = UnitOfWork(conn, tenant, None, db=self)
            yield uow
            await uow.write_collected()

    @contextlib.asynccontextmanager
    async def platform_unit_of_work(
        self, as_tenant: Tenant | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """A transaction on the platform schema (main database).

        Without ``as_tenant``: explicit platform scope (cross-tenant platform tables readable).
        With it: the platform tables seen as that tenant (RLS limits them to its rows, and
        the tenant filter adds ``tenant_id = <as_tenant>`` to every statement on them).
        """
        if as_tenant is not None:
            await self._filter_ready()
        pool = await self.pool()
        begin = begin_sql(as_tenant.id if as_tenant else None, PLATFORM_SCHEMA)
        async with pooled_transaction(pool, begin) as conn:
            uow = UnitOfWork(
                conn, as_tenant, current_principal() if as_tenant else None, platform=True, db=self
            )
            yield uow
            await uow.write_collected()

    @contextlib.asynccontextmanager
    async def admin_connection(
        self, server: str = "default", database: str | None = None, *, as_owner: bool = True
    ) -> AsyncIterator[asyncpg.Connection]:
        """A short-lived admin connection (migrations, provisioning), as the owner role."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self.admin_dsn(server, database),
            server_settings={"application_name": "tenantry-admin"},
        )
        try:
            await init_connection(conn)
            if as_owner:
                await conn.execute(f'SET ROLE "{self.settings.owner_role}"')
            yield conn
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def owner_connection(self) -> AsyncIterator[Connection]:
        """An admin connection to the main database as the owner role, from a small pool
        (at most 2, closed after a minute idle): for short catalog writes on hot paths (the
        onboarding saga writes the catalog row twice; a fresh connection is a new server
        process each time). The role is set on every acquire (the pool's reset drops it)."""
        key = ("owner", self.main_database)
        pool = self._pools.get(key)
        if pool is None:
            async with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = await asyncpg.create_pool(
                        self.admin_dsn(),
                        min_size=0,
                        max_size=2,
                        max_inactive_connection_lifetime=60,
                        init=init_connection,
                        server_settings={"application_name": "tenantry-admin"},
                    )
                    assert pool is not None
                    self._pools[key] = pool
        async with pool.acquire() as conn:
            await conn.execute(f'SET ROLE "{self.settings.owner_role}"')
            yield conn

    async def fetch_admin(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.admin_connection(as_owner=False) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
