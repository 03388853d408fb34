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

import asyncpg
import orjson

from tenantry.kernel.config import DatabaseSettings
from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.commit import CommitWriters
from tenantry.kernel.db.dsn import database_of, with_database, with_user
from tenantry.kernel.db.listener import Callback, NotifyListener
from tenantry.kernel.db.sql import TENANT_TABLES_SQL
from tenantry.kernel.db.uow import (
    PLATFORM_SCHEMA,
    IsolationLevel,
    UnitOfWork,
    begin_sql,
    pooled_transaction,
)
from tenantry.kernel.errors import ConfigError
from tenantry.kernel.tenancy.context import Principal, current_principal, require_tenant
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
    """Pools for every server the platform uses and the units of work of the ambient tenant.
    Admin and owner connections and units of work for an explicitly given tenant are in
    kernel/db/privileged.py: kernel-only."""

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

    def _admin_dsn(self, server: str = "default", database: str | None = None) -> str:
        # The admin URL of a server and database: kernel/db/privileged.py hands it out.
        return with_database(self.server_url(server), database or self.main_database)

    def app_dsn(self, server: str = "default", database: str | None = None) -> str:
        s = self.settings
        return with_user(self._admin_dsn(server, database), s.app_user, s.app_password)

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
        tenant_id in a managed schema (sql.TENANT_TABLES_SQL, the definition RLS uses). Run
        once per process, by the first tenant unit of work, and again after migrations."""
        pool = await self.pool()
        rows = await pool.fetch(TENANT_TABLES_SQL, None)
        return tenant_filter.install({r["table"] for r in rows})

    async def ensure_tenant_filter(self) -> None:
        """Load the tenant filter's table set unless this process has it (every unit of work
        seen as a tenant needs it; a platform-scope one that switches to a tenant too)."""
        if tenant_filter.current() is None:
            await self.load_tenant_filter()

    async def _owner_pool(self) -> Pool:
        """The small pool of admin connections to the main database behind
        ``privileged.owner_connection`` (at most 2, closed after a minute idle; closed with the
        other pools). Private, as the admin DSN is: only kernel/db/privileged hands it out."""
        key = ("owner", self.main_database)
        pool = self._pools.get(key)
        if pool is None:
            async with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = await asyncpg.create_pool(
                        self._admin_dsn(),
                        min_size=0,
                        max_size=2,
                        max_inactive_connection_lifetime=60,
                        init=init_connection,
                        server_settings={"application_name": "tenantry-admin"},
                    )
                    assert pool is not None
                    self._pools[key] = pool
        return pool

    @contextlib.asynccontextmanager
    async def unit_of_work(
        self, *, readonly: bool = False, isolation: IsolationLevel | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """A transaction in the current tenant's store with the tenant set transaction-locally
        (BEGIN and the settings in one round trip: ``uow.begin_sql``). The tenant is the
        ambient one (a request's, a consumer's, a job's, or ``tenant_scope(tenant)``'s).

        ``isolation="repeatable_read"`` gives one consistent snapshot (exports)."""
        async with self._unit_of_work_for(
            require_tenant(), current_principal(), readonly=readonly, isolation=isolation
        ) as uow:
            yield uow

    @contextlib.asynccontextmanager
    async def platform_unit_of_work(
        self, *, as_current_tenant: bool = False
    ) -> AsyncIterator[UnitOfWork]:
        """A transaction on the platform schema (main database).

        By default explicit platform scope (cross-tenant platform tables readable). With
        ``as_current_tenant``: the platform tables seen as the ambient tenant (RLS limits them
        to its rows, and the tenant filter adds ``tenant_id = <current>`` to every statement
        on them). A unit of work for a tenant other than the ambient one is kernel-only
        (kernel/db/privileged.py)."""
        tenant = require_tenant() if as_current_tenant else None
        async with self._platform_unit_of_work_for(tenant) as uow:
            yield uow

    # The two below are the implementation of the factories above and of kernel/db/privileged
    # (a tenant given explicitly): private, so a module's code reaches them only by the
    # ambient tenant. An import-linter contract keeps modules from importing privileged.
    @contextlib.asynccontextmanager
    async def _unit_of_work_for(
        self,
        tenant: Tenant,
        principal: Principal | None,
        *,
        readonly: bool = False,
        isolation: IsolationLevel | None = None,
    ) -> AsyncIterator[UnitOfWork]:
        await self.ensure_tenant_filter()
        pool = await self.pool(tenant.server, tenant.database)
        begin = begin_sql(tenant.id, tenant.schema, readonly=readonly, isolation=isolation)
        async with pooled_transaction(pool, begin) as conn:
            uow = UnitOfWork(conn, tenant, principal, db=self)
            yield uow
            await uow.write_collected()  # before COMMIT, in this transaction
        uow.committed()  # after it: wake the relays (kernel/db/commit)

    @contextlib.asynccontextmanager
    async def _platform_unit_of_work_for(
        self, as_tenant: Tenant | None
    ) -> AsyncIterator[UnitOfWork]:
        if as_tenant is not None:
            await self.ensure_tenant_filter()
        pool = await self.pool()
        begin = begin_sql(as_tenant.id if as_tenant else None, PLATFORM_SCHEMA)
        async with pooled_transaction(pool, begin) as conn:
            uow = UnitOfWork(
                conn, as_tenant, current_principal() if as_tenant else None, platform=True, db=self
            )
            yield uow
            await uow.write_collected()
        uow.committed()
