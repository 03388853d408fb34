"""PostgreSQL backend: an UNLOGGED table under RLS, one round trip per call.

Each call is one ``SELECT tenantry.cache_*(tenant, ...)`` on a pooled connection outside any
transaction: the function sets the tenant transaction-locally for its own statement, so RLS
applies exactly as in a unit of work, without BEGIN/SET/COMMIT round trips.

The backend keeps its own few connections (app role) in ``Connections``, a minimal pool: an
idle connection is taken and given back with a list pop/append, no reset (no session state is
ever set on these connections: only these functions run there, and their settings end with
their statement). asyncpg's ``Pool`` costs about as much as the query itself here, and with
its default reset on release one more round trip on top (docs/performance.md, "Measurements
behind the code").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from tenantry.capabilities.cache import sql
from tenantry.kernel.tenancy.audit import PlatformAudit, record

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database


class Connections:
    """Up to ``max_size`` connections opened on demand; ``run(method, *args)`` runs one call
    on an idle one (waiting in FIFO order when all are busy). A connection whose call failed
    with anything but a database error (connection lost, cancellation mid-query) is
    terminated and replaced on demand, never handed out again."""

    def __init__(self, dsn: str, max_size: int, server_settings: dict[str, str]) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self.server_settings = server_settings
        self._idle: list[asyncpg.Connection] = []
        self._all: set[asyncpg.Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[asyncpg.Connection]] = deque()
        self._closed = False

    async def _acquire(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._all.discard(conn)  # closed by the server while idle
        if self._closed:
            raise asyncpg.InterfaceError("the cache backend is closed")
        if len(self._all) + self._opening < self.max_size:
            self._opening += 1
            try:
                conn = await asyncpg.connect(self.dsn, server_settings=self.server_settings)
            except BaseException:
                self._wake_one()  # a waiter counted on this connection: let it try its own
                raise
            finally:
                self._opening -= 1
            self._all.add(conn)
            return conn
        fut: asyncio.Future[asyncpg.Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release(fut.result())
            raise

    def _release(self, conn: asyncpg.Connection) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        self._all.discard(conn)
        conn.terminate()
        self._wake_one()

    def _wake_one(self) -> None:
        """A slot is free (a connection discarded, or one that failed to open): the first
        waiter tries to open a connection of its own."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(_Retry())
                return

    async def run(self, method: str, query: str, *args: Any) -> Any:
        """``await conn.<method>(query, *args)`` on an idle connection. A call that finds its
        connection already gone (closed by the server while idle) is retried once on another;
        every cache call is idempotent."""
        retried = False
        while True:
            try:
                conn = await self._acquire()
            except _Retry:
                continue
            try:
                result = await getattr(conn, method)(query, *args)
            except asyncpg.PostgresError as exc:
                if not conn.is_closed() and not isinstance(exc, _GONE):
                    self._release(conn)  # an error of the statement: the connection is fine
                    raise
                self._discard(conn)  # the server ended the session (e.g. terminated)
                if retried:
                    raise
                retried = True
                continue
            except (asyncpg.ConnectionDoesNotExistError, ConnectionError):
                self._discard(conn)
                if retried:
                    raise
                retried = True
                continue
            except BaseException:
                self._discard(conn)
                raise
            self._release(conn)
            return result

    async def close(self) -> None:
        self._closed = True
        conns, self._all, self._idle = self._all, set(), []
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(asyncpg.InterfaceError("the cache backend is closed"))
        self._waiters.clear()
        for conn in conns:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()


_GONE = (asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError)


def _deleted(status: str) -> int:
    """The row count of a ``DELETE n`` command status."""
    return int(status.split()[-1])


class _Retry(Exception):
    """A waiter is woken because a connection was discarded: try to open one."""


class PgBackend:
    name = "postgres"

    def __init__(self, db: Database, origin: str, pool_size: int = 4) -> None:
        self.db = db
        self.origin = origin
        self.pool_size = pool_size
        self._conns: Connections | None = None
        self._closed = False

    def connections(self) -> Connections:
        if self._closed:
            # never re-open after close(): a late call (a read path's delete on a NOTIFY that
            # arrived during shutdown) would open a connection nobody closes
            raise asyncpg.InterfaceError("the cache backend is closed")
        if self._conns is None:
            self._conns = Connections(
                self.db.app_dsn(), self.pool_size, {"application_name": "tenantry-cache"}
            )
        return self._conns

    async def get(self, tenant: UUID, key: str) -> bytes | None:
        value: bytes | None = await (self._conns or self.connections()).run(
            "fetchval", sql.GET, tenant, key
        )
        return value

    async def set(
        self, tenant: UUID, key: str, value: bytes, ttl_s: float | None, tags: Sequence[str]
    ) -> None:
        await self.connections().run(
            "execute", sql.SET, tenant, key, value, ttl_s, list(tags), self.origin
        )

    async def delete(self, tenant: UUID, key: str) -> bool:
        return bool(await self.connections().run("fetchval", sql.DELETE, tenant, key, self.origin))

    async def invalidate_tags(self, tenant: UUID, tags: Sequence[str]) -> int:
        return int(
            await self.connections().run(
                "fetchval", sql.INVALIDATE_TAGS, tenant, list(tags), self.origin
            )
        )

    async def sweep(self, batch: int = 10_000, audit: PlatformAudit | None = None) -> int:
        """Delete expired rows of every tenant (platform scope), in batches of ``batch``.

        With ``audit`` (``tenantry cache sweep``, an operator's command) every batch that
        removed rows is recorded as ``cache.swept`` (``after.removed``: how many) in the
        operator tenant's log, in the batch's own transaction (``PlatformAudit.
        platform_scope``). The maintenance job's periodic sweep passes none: the platform's
        own housekeeping, like the chainer, is not an operator's change."""
        total = 0
        while True:
            if audit is None:
                async with self.db.platform_unit_of_work() as uow:
                    n = _deleted(await uow.execute(sql.SWEEP, batch))
            else:
                async with audit.platform_scope() as (uow, log):
                    n = _deleted(await uow.execute(sql.SWEEP, batch))
                    if n:
                        record(
                            log,
                            "cache.swept",
                            f"cache:{self.name}",
                            after={"removed": n},
                            details={"batch": batch},
                        )
            total += n
            if n < batch:
                return total

    async def close(self) -> None:
        self._closed = True
        conns, self._conns = self._conns, None
        if conns is not None:
            await conns.close()
