"""What a unit of work writes at commit: the messages and audit records collected on it.

Services call ``uow.publish(event)`` and ``uow.audit(action, ...)``; nothing is written then.
When the unit of work's block ends without an exception, the kernel writes what was
collected **in the same transaction, just before COMMIT** (``UnitOfWork.write_collected``):
the outbox rows in one statement, the audit records in one statement. A rollback (an
exception, a savepoint rolled back) drops what was collected with it.

The kernel knows the outbox (kernel/messaging/outbox registers its writer when messaging is
built) but not the audit capability: the audit capability plugs its writer in through
``CommitWriters.audit`` (an ``AuditSink``). Without one, ``uow.audit`` records are dropped
(a platform built without the audit capability keeps no audit log).

``tenant_store`` is the one place that decides where rows of a tenant's store go when the
unit of work is not a transaction *in* that store: a platform unit of work (main database)
seen as a tenant, e.g. identity's memberships. A shared or schema tenant's store is a schema
of the main database, so the rows are written there in the same transaction (the writer
names the schema); a database-mode tenant's store is another database, which cannot join
the transaction: the rows are written in a transaction of their own there, committed first
(``atomic`` False: a failure of the caller's COMMIT after that leaves them without their
change).

When the rows can join the transaction, each writer gives its INSERT as a ``Part`` and the
kernel sends them all as **one statement** (``combine``): the commit costs one round trip
more than the change, not two. A service's last write can carry them instead
(``uow.execute_with_collected``, ``join``): the change, its outbox rows and its audit
records in one statement, so the commit costs no round trip more than the change.

**Waking the relay is not part of the transaction.** A ``pg_notify`` in the commit's
statement takes PostgreSQL's one notification-queue lock at every COMMIT, which serializes
the commits of every writer. The outbox is told instead after the COMMIT (``OutboxSink.
committed``): it wakes this process's relay at once and the other processes' relays by one
coalesced NOTIFY per database per interval (kernel/messaging/outbox). A crash between the
COMMIT and that NOTIFY only delays a message to the relay's next poll.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from tenantry.kernel.db import sql as q

if TYPE_CHECKING:
    from tenantry.kernel.db.uow import UnitOfWork
    from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """One outbox row, built when the message was published (its id, name, JSON payload and
    headers: the trace and causation of that moment), written at commit."""

    message_id: UUID
    name: str
    kind: str
    target: str | None
    payload: str
    headers: str


@dataclass(frozen=True, slots=True)
class Part:
    """One writer's share of the commit's single statement: ``sql`` is one data-modifying
    statement (an INSERT) and ``select`` an optional expression for the final SELECT (a
    ``pg_notify``), both numbering their parameters from $1 over ``args``."""

    sql: str
    args: tuple[Any, ...]
    select: str | None = None


_PARAM = re.compile(r"\$(\d+)")
_CARRIER = re.compile(q.CARRIER_STATEMENT, re.S | re.I)


@cache
def _combined(parts: tuple[tuple[str, str | None, int], ...], base: int = 0) -> str:
    ctes: list[str] = []
    selects: list[str] = []
    offset = base
    for i, (sql, select, nargs) in enumerate(parts):

        def shift(m: re.Match[str], off: int = offset) -> str:
            return f"${int(m.group(1)) + off}"

        ctes.append(f"collected_{i} AS ({_PARAM.sub(shift, sql)})")
        if select:
            selects.append(_PARAM.sub(shift, select))
        offset += nargs
    return "WITH " + ", ".join(ctes) + " SELECT " + (", ".join(selects) or "1")


def combine(parts: Sequence[Part]) -> tuple[str, list[Any]]:
    """The writers' parts as one statement (data-modifying CTEs, their parameters renumbered;
    the text is built once per combination): one round trip at commit for the outbox and
    the audit records together. Parameters are ``$n`` outside literals in every part."""
    text = _combined(tuple((p.sql, p.select, len(p.args)) for p in parts))
    args: list[Any] = []
    for p in parts:
        args.extend(p.args)
    return text, args


@cache
def _joined(statement: str, nargs: int, parts: tuple[tuple[str, str | None, int], ...]) -> str:
    m = _CARRIER.fullmatch(statement)
    if m is None:
        raise ValueError(
            "a statement carrying the collected rows must read `WITH ... SELECT 1`: "
            + " ".join(statement.split())[:80]
        )
    rest = _combined(parts, nargs).removeprefix("WITH ")
    return f"WITH {m.group('ctes')}, {rest}"


def join(statement: str, args: Sequence[Any], parts: Sequence[Part]) -> tuple[str, list[Any]]:
    """``statement`` (``WITH <ctes> SELECT 1``, parameters ``$1..$len(args)``) with the
    writers' parts appended to its CTEs: a change and the rows it collected (outbox, audit)
    in one statement, so one round trip (``UnitOfWork.execute_with_collected``). The parts'
    CTEs are named ``collected_<n>``; the statement's own CTEs must not be."""
    text = _joined(statement, len(args), tuple((p.sql, p.select, len(p.args)) for p in parts))
    out = list(args)
    for p in parts:
        out.extend(p.args)
    return text, out


class OutboxSink(Protocol):
    """Builds outbox rows when a message is published and writes them at commit (``part``:
    as a share of the commit's one statement; ``write``: alone)."""

    def message(
        self, uow: UnitOfWork, message: Any, kind: str, target: str | None
    ) -> PendingMessage: ...

    def events(self, uow: UnitOfWork, events: Sequence[Any]) -> list[PendingMessage]: ...

    def part(self, uow: UnitOfWork, rows: Sequence[PendingMessage]) -> Part | None: ...

    async def write(self, uow: UnitOfWork, rows: Sequence[PendingMessage]) -> None: ...

    def committed(self, tenant: Tenant) -> None:
        """Rows of ``tenant`` were committed (after the COMMIT; never raises)."""
        ...


class AuditSink(Protocol):
    """The audit capability's side of ``uow.audit``: ``record`` stamps a record when it is
    made (who, when, the request and trace ids), ``write`` appends them at commit."""

    def record(
        self,
        uow: UnitOfWork,
        action: str,
        resource: str | None,
        *,
        outcome: str,
        before: Any,
        after: Any,
        details: Any,
    ) -> Any: ...

    def part(self, uow: UnitOfWork, records: Sequence[Any]) -> Part | None: ...

    async def write(self, uow: UnitOfWork, records: Sequence[Any]) -> None: ...


@dataclass(slots=True)
class CommitWriters:
    """The writers a Database's units of work use at commit (one set per platform)."""

    outbox: OutboxSink | None = None
    audit: AuditSink | None = None


def joins(uow: UnitOfWork) -> str | None:
    """The schema a writer's part names (``tenant_store``'s decision) when the rows can be
    written in ``uow``'s own transaction; None when they cannot (a database-mode tenant seen
    from a platform unit of work: the writer's ``write`` handles it)."""
    tenant = uow.tenant
    if tenant is None or (uow.platform and tenant.database is not None):
        return None
    return tenant.schema


@dataclass(frozen=True, slots=True)
class Store:
    """Where to write rows of the unit of work's tenant store (see the module docstring)."""

    uow: UnitOfWork
    #: The store's schema (an identifier from the catalog): SQL names its tables with it
    #: when ``qualified``, because the unit of work's search_path is another schema.
    schema: str
    qualified: bool
    #: False: written in a transaction of its own (a database-mode tenant's store seen from
    #: a platform unit of work), committed before the caller's.
    atomic: bool


@contextlib.asynccontextmanager
async def tenant_store(uow: UnitOfWork, what: str) -> AsyncIterator[Store]:
    """The unit of work (and schema) that writes ``uow``'s tenant's rows; ``what`` names them
    in the warning of the non-atomic case."""
    tenant = uow.tenant
    if tenant is None:
        raise RuntimeError(f"{what} belong to a tenant: use a tenant unit of work")
    if not uow.platform:
        yield Store(uow, tenant.schema, False, True)
    elif tenant.database is None:
        yield Store(uow, tenant.schema, True, True)
    else:
        _log.warning(
            "%s of database-mode tenant %s written outside the caller's transaction",
            what,
            tenant.slug,
        )
        # privileged imports database, which imports this module: imported when first used
        from tenantry.kernel.db.privileged import tenant_unit_of_work

        async with tenant_unit_of_work(uow.db, tenant) as own:
            yield Store(own, tenant.schema, False, False)
