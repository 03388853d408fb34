"""The unit of work: one transaction, in one tenant's store, with the tenant set.

The tenant id and the search_path are set transaction-locally (``set_config(..., true)``), so
a pooled connection never carries a tenant into the next transaction and the platform stays
safe behind a transaction-mode pooler. Handlers receive a unit of work and never see a raw
connection or pass a tenant id into SQL: every statement goes through the tenant filter
(kernel/db/tenant_filter), which adds ``tenant_id = <this unit's tenant>`` as a bound
parameter, and RLS checks the same underneath.

``begin_sql`` opens the transaction and makes those settings in **one round trip**: ``BEGIN
...; SELECT set_config(...)`` sent as one simple-query message (asyncpg's ``execute()``
without arguments). The simple protocol takes no parameters, so that is the one place where
values are written into SQL text, and only two kinds of value can get there: the tenant id,
which must be a ``uuid.UUID`` (its ``str`` is 36 hex digits and dashes), and the schema name,
quoted as an identifier inside the search_path value and then as a string literal (quotes
doubled; backslashes and NUL refused, so the literal means the same whatever
``standard_conforming_strings`` says).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.commit import (
    CommitWriters,
    OutboxSink,
    Part,
    PendingMessage,
    combine,
    join,
)
from tenantry.kernel.db.errors import database_unavailable
from tenantry.kernel.tenancy.context import Principal, current_principal
from tenantry.kernel.tenancy.model import Tenant

PLATFORM_SCHEMA = "tenantry"
Connection = asyncpg.Connection | PoolConnectionProxy
IsolationLevel = Literal["read_committed", "repeatable_read", "serializable"]

_ISOLATION_SQL: dict[str | None, str] = {
    None: "",
    "read_committed": " ISOLATION LEVEL READ COMMITTED",
    "repeatable_read": " ISOLATION LEVEL REPEATABLE READ",
    "serializable": " ISOLATION LEVEL SERIALIZABLE",
}


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (inner double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal; refuses backslashes and NUL (see the module doc)."""
    if "\\" in value or "\x00" in value:
        raise ValueError(f"refusing to quote {value!r}: backslash or NUL")
    return "'" + value.replace("'", "''") + "'"


def begin_sql(
    tenant_id: UUID | None,
    search_path: str,
    *,
    readonly: bool = False,
    isolation: IsolationLevel | None = None,
) -> str:
    """BEGIN plus the transaction-local settings, as one simple-query script.

    ``tenant_id`` None is the platform scope (no tenant). The same three settings as
    ``UnitOfWork.SET_TENANT`` / ``SET_PLATFORM``, with the values quoted (module doc).
    """
    if tenant_id is None:
        tid, scope = "", "platform"
    elif isinstance(tenant_id, UUID):
        tid, scope = str(tenant_id), "tenant"
    else:
        raise TypeError(f"tenant_id must be a UUID, not {type(tenant_id).__name__}")
    mode = _ISOLATION_SQL[isolation] + (" READ ONLY" if readonly else "")
    return (
        f"BEGIN{mode}; SELECT set_config('app.tenant_id', '{tid}', true),"
        f" set_config('search_path', {quote_literal(quote_ident(search_path))}, true),"
        f" set_config('app.scope', '{scope}', true)"
    )


def _open(conn: Connection) -> bool:
    """Whether ``conn`` can still take a statement. A pool proxy whose connection was lost is
    detached at once (asyncpg releases it), and asking it anything raises; that must not
    replace the error being handled."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


@contextlib.asynccontextmanager
async def transaction(conn: Connection, begin: str) -> AsyncIterator[None]:
    """Run ``begin`` (``begin_sql``), then COMMIT on success or ROLLBACK on any exception.

    Replaces ``conn.transaction()`` + a settings statement (two round trips) with one. asyncpg
    does not know about this transaction, so nested blocks go through
    ``UnitOfWork.savepoint`` (``conn.transaction()`` would refuse to start inside it). If the
    ROLLBACK itself cannot be sent (broken or cancelling connection), the pool's release
    still rolls back any open transaction, or terminates the connection; the error raised is
    always the one that ended the block, never one of the ROLLBACK on a dead connection.
    """
    await conn.execute(begin)
    async with _finish(conn):
        yield


@contextlib.asynccontextmanager
async def _finish(conn: Connection) -> AsyncIterator[None]:
    try:
        yield
    except BaseException:
        if _open(conn):
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


@contextlib.asynccontextmanager
async def pooled_transaction(pool: asyncpg.Pool, begin: str) -> AsyncIterator[Connection]:
    """A connection from ``pool`` in a transaction opened with ``begin`` (``transaction``).

    **BEGIN is retried once**, on another connection, when it fails because the connection
    was lost (kernel/db/errors): a pooled connection whose server process was terminated
    while it sat idle (``pg_terminate_backend``, a restart) is only found out when it is
    used. Nothing has run on it yet, so the retry cannot do anything twice. Anything later
    in the transaction is not retried here (the caller's 503 says retry)."""
    for attempt in (1, 2):
        async with pool.acquire() as conn:
            try:
                await conn.execute(begin)
            except Exception as exc:
                if attempt == 2 or not database_unavailable(exc):
                    raise
                if _open(conn):
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()  # its protocol state is unknown: never reuse it
                continue
            async with _finish(conn):
                yield conn
            return


class UnitOfWork:
    SET_TENANT = (
        "SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true),"
        " set_config('app.scope', 'tenant', true)"
    )
    SET_PLATFORM = (
        "SELECT set_config('app.tenant_id', '', true), set_config('search_path', $1, true),"
        " set_config('app.scope', 'platform', true)"
    )

    __slots__ = (
        "_audit",
        "_conn",
        "_outbox",
        "_savepoints",
        "_woken",
        "db",
        "platform",
        "principal",
        "tenant",
    )

    def __init__(
        self,
        conn: Connection,
        tenant: Tenant | None,
        principal: Principal | None,
        *,
        platform: bool = False,
        db: Any = None,
    ) -> None:
        self._conn = conn
        self._savepoints = 0
        #: Collected for the commit (kernel/db/commit): outbox rows, audit records.
        self._outbox: list[PendingMessage] = []
        self._audit: list[Any] = []
        #: Outbox rows were written: wake the relays after the COMMIT (``committed``).
        self._woken = False
        #: The Database that opened this unit of work (to open another in the same platform).
        self.db = db
        self.tenant = tenant
        self.principal = principal
        #: True for a transaction on the platform schema of the main database (not the
        #: tenant's own store): capabilities writing tenant-store rows need to know.
        self.platform = platform

    @property
    def tenant_id(self) -> UUID:
        """The tenant of this unit of work (statements need not pass it: the tenant filter
        adds it to every statement on a tenant-owned table)."""
        if self.tenant is None:
            raise RuntimeError("platform unit of work has no tenant")
        return self.tenant.id

    def _filtered(self, sql: str, args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        """``sql`` and ``args`` through the tenant filter (kernel/db/tenant_filter): every
        statement on a tenant-owned table gets ``tenant_id = $N``, $N this unit of work's
        tenant. A unit of work without a tenant (explicit platform scope: login, the catalog,
        cross-tenant platform jobs) is not filtered; RLS admits it to platform tables only."""
        tenant = self.tenant
        if tenant is None or not tenant_filter.active():
            return sql, args
        tf = tenant_filter.current()
        if tf is None:
            raise RuntimeError("tenant filter not loaded: open units of work through Database")
        done = tf.rewrite(sql)
        if not done.needs_tenant:
            return sql, args
        return done.sql, (*args, tenant.id)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        sql, args = self._filtered(sql, args)
        rows: list[asyncpg.Record] = await self._conn.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        sql, args = self._filtered(sql, args)
        row: asyncpg.Record | None = await self._conn.fetchrow(sql, *args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        sql, args = self._filtered(sql, args)
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        sql, args = self._filtered(sql, args)
        status: str = await self._conn.execute(sql, *args)
        return status

    async def executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        filtered, extra = self._filtered(sql, ())
        if extra:
            args = [(*a, *extra) for a in args]
        await self._conn.executemany(filtered, args)

    async def copy_from_query(self, sql: str, *args: Any, output: Any, **opts: Any) -> str:
        """``COPY (sql) TO STDOUT`` in this transaction (and snapshot), streamed to ``output``
        (a callable receiving bytes chunks, or a file); ``opts`` as asyncpg's (format...)."""
        sql, args = self._filtered(sql, args)
        status: str = await self._conn.copy_from_query(sql, *args, output=output, **opts)
        return status

    def cursor(self, sql: str, *args: Any, prefetch: int | None = None) -> Any:
        """A server-side cursor over ``sql`` in this transaction (``async for``)."""
        sql, args = self._filtered(sql, args)
        return self._conn.cursor(sql, *args, prefetch=prefetch)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction (SAVEPOINT) inside this unit of work: released on success,
        rolled back to (and the exception re-raised) on failure."""
        self._savepoints += 1
        name = f"tenantry_sp_{self._savepoints}"
        await self._conn.execute(f"SAVEPOINT {name}")
        collected = (len(self._outbox), len(self._audit))
        try:
            yield
        except BaseException:
            # what was published or audited inside the savepoint goes with it
            del self._outbox[collected[0] :], self._audit[collected[1] :]
            if _open(self._conn):
                with contextlib.suppress(Exception):
                    await self._conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        await self._conn.execute(f"RELEASE SAVEPOINT {name}")

    def log_of(self, tenant: Tenant | None) -> UnitOfWork:
        """A view of this transaction seen as ``tenant``, to collect audit records on (not
        to run statements: the transaction's settings stay this unit's). For a change made
        in explicit platform scope (across tenants) but recorded in one tenant's log: its
        owner switches the settings to ``tenant`` and writes the view's records before COMMIT
        (kernel/tenancy/audit.PlatformAudit.platform_scope)."""
        return UnitOfWork(
            self._conn, tenant, self.principal or current_principal(), platform=True, db=self.db
        )

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY, delivered on commit."""
        await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    # -- collected for the commit (kernel/db/commit) -----------------------------------------
    # Kept apart from the statement methods above: nothing here runs SQL before the commit.
    def _writers(self) -> CommitWriters:
        writers: CommitWriters | None = getattr(self.db, "commit_writers", None)
        if writers is None:
            raise RuntimeError("this unit of work has no commit writers (no Database)")
        return writers

    def publish(self, event: Any) -> UUID:
        """Collect ``event`` for the outbox of this unit of work's tenant; it is written at
        commit, in this transaction (a rollback publishes nothing). Returns its message id."""
        return self.collect_message(event, "event", None)

    def publish_many(self, events: Sequence[Any]) -> list[UUID]:
        """``publish`` for many events (one span for all; one statement at commit anyway)."""
        if not events:
            return []
        sink = self._outbox_sink()
        rows = sink.events(self, events)
        self._outbox.extend(rows)
        return [r.message_id for r in rows]

    def collect_message(self, message: Any, kind: str, target: str | None) -> UUID:
        """An outbox row of any kind (the dispatcher's bus commands: kind "command", the
        handler's module as target)."""
        row = self._outbox_sink().message(self, message, kind, target)
        self._outbox.append(row)
        return row.message_id

    def audit(
        self,
        action: str,
        resource: str | None = None,
        *,
        before: Any = None,
        after: Any = None,
        outcome: str = "success",
        details: Any = None,
    ) -> None:
        """Collect an audit record of a change made in this unit of work; it is appended at
        commit, in this transaction, stamped now with who and the request (the audit
        capability's writer; none installed: dropped)."""
        sink = self._writers().audit
        if sink is None:
            return
        self._audit.append(
            sink.record(
                self,
                action,
                resource,
                outcome=outcome,
                before=before,
                after=after,
                details=details,
            )
        )

    def _outbox_sink(self) -> OutboxSink:
        if self.tenant is None:
            raise RuntimeError("messages belong to a tenant (platform unit of work)")
        sink = self._writers().outbox
        if sink is None:
            raise RuntimeError("no outbox writer: messaging is not built on this Database")
        return sink

    @property
    def collected(self) -> tuple[int, int]:
        """(outbox rows, audit records) waiting for the commit."""
        return len(self._outbox), len(self._audit)

    def _take_parts(self) -> list[Part] | None:
        """What was collected, as parts of one statement, taken off this unit of work; None
        (nothing taken) when some rows cannot join this transaction (a database-mode
        tenant's store seen from a platform unit of work: each writer's ``write`` then)."""
        writers = self._writers()
        parts: list[Part] = []
        if self._outbox:
            op = writers.outbox.part(self, self._outbox) if writers.outbox else None
            if op is None:
                return None
            parts.append(op)
        if self._audit and writers.audit is not None:
            ap = writers.audit.part(self, self._audit)
            if ap is None:
                return None
            parts.append(ap)
        if self._outbox:
            self._woken = True
        self._outbox, self._audit = [], []
        return parts

    async def execute_with_collected(self, sql: str, *args: Any) -> str:
        """Run ``sql``, a ``WITH <ctes> SELECT 1`` statement, with what was collected so far
        (outbox rows, audit records) joined to it as further data-modifying CTEs
        (kernel/db/commit.join): a change and its messages and records in one round trip,
        so the commit that follows has nothing left to write. What is collected after it is
        written at commit as usual; so is what cannot join this transaction."""
        parts = self._take_parts() if (self._outbox or self._audit) else None
        if not parts:
            return await self.execute(sql, *args)
        text, all_args = join(sql, args, parts)
        return await self.execute(text, *all_args)

    async def write_collected(self) -> None:
        """Write what was collected, in this transaction: the kernel calls it just before
        COMMIT (``Database``'s units of work). Also callable earlier by code that must see
        its own rows before the end of the transaction."""
        if not (self._outbox or self._audit):
            return
        parts = self._take_parts()
        if parts:
            await self.execute(*_combine_parts(parts))  # one round trip for all
            return
        writers = self._writers()
        rows, self._outbox = self._outbox, []
        records, self._audit = self._audit, []
        if rows:
            assert writers.outbox is not None
            await writers.outbox.write(self, rows)
            self._woken = True
        if records and writers.audit is not None:
            await writers.audit.write(self, records)

    def committed(self) -> None:
        """After this unit of work's COMMIT (``Database``): tell the outbox that the tenant
        has new rows (wakes the relays: kernel/messaging/outbox). Never raises."""
        if not self._woken or self.tenant is None:
            return
        self._woken = False
        outbox = self._writers().outbox
        if outbox is not None:
            outbox.committed(self.tenant)


def _combine_parts(parts: list[Part]) -> tuple[Any, ...]:
    text, args = combine(parts)
    return (text, *args)
