"""Writing, reading and verifying the audit log.

``record(uow, ...)`` appends in the caller's transaction: the record commits or rolls back
with the change it describes. Each tenant's records form a hash chain whose head
(``audit_heads``: last seq and hash) is locked by the writer, so writers of one tenant are
serialized from the moment they append until they commit, while tenants never wait for each
other. Append late in a transaction to keep that window short.

Tables live in the tenant's store; SQL names them with the store's schema (an identifier from
the catalog, never from a request), so a platform unit of work on the main database (identity's
memberships) appends in its own transaction too. A database-mode tenant's store is another
database: from a platform unit of work the record is then written in a transaction of its own
(``details.atomic = false``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from tenantry.capabilities.audit import chain
from tenantry.capabilities.audit.context import current_meta
from tenantry.capabilities.audit.sql import (
    ENSURE_PARTITIONS,
    HAS_PENDING,
    INSERT_EVENT,
    LIST_EVENTS,
    LOCK_HEAD,
    PENDING_PART,
    QUERY_EVENTS,
    SELECT_CHAIN,
    SELECT_HEAD,
    SET_HEAD,
    SET_PATH,
    TAKE_PENDING,
)
from tenantry.capabilities.filtering import FieldSet, fields
from tenantry.capabilities.pagination import ListQuery
from tenantry.kernel.db.commit import Part, joins, tenant_store
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.catalog import STORE_MISSING
from tenantry.kernel.tenancy.context import Principal, current_principal, tenant_scope
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)

EVENT_FIELDS = FieldSet(
    "audit.events",
    id=fields.bigint("seq", "e.seq"),
    fields=[
        fields.datetime("occurred_at", "e.occurred_at", sortable=True),
        fields.text("action", "e.action", sortable=True),
        fields.text("actor", "e.actor", nullable=True),
        fields.enum("actor_kind", "e.actor_kind", ["user", "client"], nullable=True),
        fields.text("client", "e.client", nullable=True),
        fields.text("ip", "e.ip", nullable=True),
        fields.text("resource", "e.resource", nullable=True),
        fields.text("outcome", "e.outcome"),
        fields.text("request_id", "e.request_id", nullable=True),
        fields.text("trace_id", "e.trace_id", nullable=True),
    ],
    default_sort="-occurred_at",
)


@cache
def sql(template: str, schema: str) -> str:
    """A query for one store's schema (a catalog identifier, quoted)."""
    return template.format(s='"' + schema.replace('"', '""') + '"')


@dataclass(frozen=True, slots=True)
class Event:
    """One audit record before it is chained."""

    action: str
    resource: str | None = None
    outcome: str = "success"
    before: Any = None
    after: Any = None
    details: Any = None
    actor: str | None = None
    actor_kind: str | None = None
    client: str | None = None
    ip: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def event(
    action: str,
    resource: str | None = None,
    *,
    outcome: str = "success",
    before: Any = None,
    after: Any = None,
    details: Any = None,
    principal: Principal | None = None,
) -> Event:
    """An event stamped with who (principal, client, ip) and the request/trace ids."""
    p = principal or current_principal()
    meta = current_meta()
    return Event(
        action=action,
        resource=resource,
        outcome=outcome,
        before=chain.normalize(before),
        after=chain.normalize(after),
        details=chain.normalize(details),
        actor=p.subject if p else None,
        actor_kind=p.kind if p else None,
        client=p.subject.removeprefix("client:") if p and p.kind == "client" else None,
        ip=meta.ip,
        request_id=meta.request_id,
        trace_id=meta.trace_id,
    )


async def record_event(uow: UnitOfWork, e: Event) -> int:
    """Append one event in ``uow``'s transaction, in the store the kernel names
    (kernel/db/commit.tenant_store: the one case where that cannot be is a platform unit of
    work of a database-mode tenant, marked ``details.atomic = false``)."""
    async with tenant_store(uow, "an audit record") as store:
        if not store.atomic:
            e = dataclasses.replace(e, details={**(e.details or {}), "atomic": False})
        return await append(store.uow, [e])


async def append(uow: UnitOfWork, events: Sequence[Event]) -> int:
    """Chain and insert ``events`` in ``uow``'s transaction; return the last seq."""
    tenant = uow.tenant
    if tenant is None:
        raise RuntimeError("audit records belong to a tenant: use a tenant unit of work")
    head = await uow.fetchrow(sql(LOCK_HEAD, tenant.schema), tenant.id)
    assert head is not None
    return await _chain(uow, tenant, int(head["seq"]), bytes(head["hash"]), events)


async def _chain(
    uow: UnitOfWork, tenant: Tenant, seq: int, prev: bytes, events: Sequence[Event]
) -> int:
    """Link ``events`` after the head (``seq``, ``prev``) the caller has locked, insert them
    and move the head; return the last seq."""
    s = tenant.schema
    rows = []
    for e in events:
        seq += 1
        rec: dict[str, Any] = {
            "tenant_id": tenant.id,
            "seq": seq,
            "id": e.id,
            "occurred_at": e.occurred_at,
            "actor": e.actor,
            "actor_kind": e.actor_kind,
            "client": e.client,
            "ip": e.ip,
            "action": e.action,
            "resource": e.resource,
            "outcome": e.outcome,
            "request_id": e.request_id,
            "trace_id": e.trace_id,
            "before": e.before,
            "after": e.after,
            "details": e.details,
        }
        h = chain.link(prev, rec)
        rows.append((*(rec[f] for f in chain.FIELDS), prev, h))
        prev = h
    if len(rows) == 1:
        await uow.execute(sql(INSERT_EVENT, s), *rows[0])
    else:
        await uow.executemany(sql(INSERT_EVENT, s), rows)
    await uow.execute(sql(SET_HEAD, s), tenant.id, seq, prev)
    return seq


@dataclass(frozen=True, slots=True)
class Pending:
    """A ``uow.audit`` record before the commit: stamped when it was made, its JSON values
    already text (serialized once, and a caller's later change to them is not recorded)."""

    action: str
    resource: str | None
    outcome: str
    before: str | None
    after: str | None
    details: str | None
    actor: str | None
    actor_kind: str | None
    client: str | None
    ip: str | None
    request_id: str | None
    trace_id: str | None
    occurred_at: datetime
    id: uuid.UUID


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


def _doc(r: Pending) -> dict[str, Any]:
    """A pending record as one element of the INSERT's jsonb array (its JSON values embedded
    as they were serialized when the record was made)."""
    return {
        "id": r.id,
        "occurred_at": r.occurred_at,
        "actor": r.actor,
        "actor_kind": r.actor_kind,
        "client": r.client,
        "ip": r.ip,
        "action": r.action,
        "resource": r.resource,
        "outcome": r.outcome,
        "request_id": r.request_id,
        "trace_id": r.trace_id,
        "before": None if r.before is None else orjson.Fragment(r.before),
        "after": None if r.after is None else orjson.Fragment(r.after),
        "details": None if r.details is None else orjson.Fragment(r.details),
    }


async def chain_pending(uow: UnitOfWork, batch: int) -> int:
    """Chain up to ``batch`` of the tenant's pending records (``audit_pending``, oldest
    first) onto its chain, holding its head for this transaction; return how many. Several
    chainers (processes) coordinate through the head's row lock: the second one finds the
    rows gone."""
    tenant = uow.tenant
    if tenant is None:
        raise RuntimeError("audit records belong to a tenant: use a tenant unit of work")
    s = tenant.schema
    if not await uow.fetchval(sql(HAS_PENDING, s)):
        return 0
    head = await uow.fetchrow(sql(LOCK_HEAD, s), tenant.id)
    assert head is not None
    rows = sorted(await uow.fetch(sql(TAKE_PENDING, s), batch), key=lambda r: r["pos"])
    if rows:
        events = [
            Event(
                action=r["action"],
                resource=r["resource"],
                outcome=r["outcome"],
                before=r["before"],
                after=r["after"],
                details=r["details"],
                actor=r["actor"],
                actor_kind=r["actor_kind"],
                client=r["client"],
                ip=r["ip"],
                request_id=r["request_id"],
                trace_id=r["trace_id"],
                occurred_at=r["occurred_at"],
                id=r["id"],
            )
            for r in rows
        ]
        await _chain(uow, tenant, int(head["seq"]), bytes(head["hash"]), events)
    return len(rows)


@contextlib.asynccontextmanager
async def _in_store(db: Database, tenant: Tenant) -> AsyncIterator[UnitOfWork]:
    """A unit of work in ``tenant``'s store for the operator's tools (chain, verify, list),
    through the ambient door: ``tenant_scope`` then ``db.unit_of_work()``, without a
    principal (kernel/db/privileged.py is kernel-only)."""
    with tenant_scope(tenant):
        async with db.unit_of_work() as uow:
            yield uow


class AuditLog:
    """The audit service: the writer of ``uow.audit`` (the kernel's ``AuditSink``: records
    appended at commit without the chain lock, chained in batches by ``chain``), appends
    outside a caller's transaction, queries, verification."""

    def __init__(self, db: Database, chain_batch: int = 1000) -> None:
        self.db = db
        self.chain_batch = chain_batch
        #: Called with the tenant whenever pending records were written (the chainer's
        #: wake-up; the record is only visible once the writer commits).
        self.on_pending: Callable[[Tenant], None] | None = None

    # -- AuditSink (kernel/db/commit) ----------------------------------------------------------
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
    ) -> Pending:
        p = uow.principal or current_principal()
        meta = current_meta()
        return Pending(
            action,
            resource,
            outcome,
            _json(before),
            _json(after),
            _json(details),
            p.subject if p else None,
            p.kind if p else None,
            p.subject.removeprefix("client:") if p and p.kind == "client" else None,
            meta.ip,
            meta.request_id,
            meta.trace_id,
            datetime.now(UTC),
            uuid.uuid4(),
        )

    def part(self, uow: UnitOfWork, records: Sequence[Pending]) -> Part | None:
        """The INSERT as a share of the commit's one statement (with the outbox rows)."""
        schema = joins(uow)
        if schema is None:
            return None
        tenant = uow.tenant
        assert tenant is not None
        if self.on_pending is not None:
            self.on_pending(tenant)
        return Part(sql(PENDING_PART, schema), (tenant.id, [_doc(r) for r in records]))

    async def write(self, uow: UnitOfWork, records: Sequence[Pending]) -> None:
        """Append ``records`` to ``audit_pending`` in one statement, at ``uow``'s commit: no
        chain lock, so a tenant's writers never wait for each other here."""
        async with tenant_store(uow, f"{len(records)} audit records") as store:
            docs = [_doc(r) for r in records]
            if not store.atomic:
                for d, r in zip(docs, records, strict=True):
                    d["details"] = {
                        **(orjson.loads(r.details) if r.details else {}),
                        "atomic": False,
                    }
            tenant = store.uow.tenant
            assert tenant is not None
            await store.uow.execute(sql(PENDING_PART, store.schema), tenant.id, docs)
        if self.on_pending is not None:
            self.on_pending(tenant)

    async def chain(self, tenant: Tenant) -> int:
        """Chain all of ``tenant``'s pending records, ``chain_batch`` per transaction."""
        total = 0
        while True:
            async with _in_store(self.db, tenant) as uow:
                n = await chain_pending(uow, self.chain_batch)
            total += n
            if n < self.chain_batch:
                return total

    async def append_for(self, tenant: Tenant, events: Sequence[Event]) -> int:
        async with _in_store(self.db, tenant) as uow:
            return await append(uow, events)

    async def events(
        self, tenant: Tenant, *, before_seq: int | None, limit: int, **filters: Any
    ) -> list[dict[str, Any]]:
        await self.chain(tenant)  # read what was committed, chained or not yet
        async with _in_store(self.db, tenant) as uow:
            rows = await uow.fetch(
                sql(LIST_EVENTS, tenant.schema),
                before_seq,
                filters.get("action"),
                filters.get("actor"),
                filters.get("outcome"),
                filters.get("since"),
                filters.get("until"),
                limit,
            )
        return [dict(r) for r in rows]

    async def query(self, tenant: Tenant, q: ListQuery) -> dict[str, Any]:
        """One page of the filter-engine query (``{"items", "next_cursor"}``)."""
        await self.chain(tenant)
        async with _in_store(self.db, tenant) as uow:
            return await q.fetch_page(uow, sql(QUERY_EVENTS, tenant.schema), serialize=_view)

    async def rows(self, tenant: Tenant, batch: int = 5000) -> AsyncIterator[Mapping[str, Any]]:
        last = 0
        while True:
            async with _in_store(self.db, tenant) as uow:
                rows = await uow.fetch(sql(SELECT_CHAIN, tenant.schema), last, batch)
            for r in rows:
                yield dict(r)
            if len(rows) < batch:
                return
            last = int(rows[-1]["seq"])

    async def verify(self, tenant: Tenant) -> tuple[int, list[str]]:
        """(records checked, problems); no problems = the chain is intact. Pending records
        are chained first, so every committed record is verified."""
        await self.chain(tenant)
        async with _in_store(self.db, tenant) as uow:
            head = await uow.fetchrow(sql(SELECT_HEAD, tenant.schema), tenant.id)
        head_seq, head_hash = (int(head["seq"]), bytes(head["hash"])) if head else (0, b"")
        rows = [r async for r in self.rows(tenant)]
        return len(rows), chain.verify(rows, head_seq, head_hash)

    async def ensure_partitions(
        self, stores: Sequence[tuple[str, str | None, str]], ahead: int, app_role: str
    ) -> int:
        """Create this month's and ``ahead`` future monthly partitions in every store (as the
        owner) and give new partitions their RLS policies; return how many were made."""
        from tenantry.kernel.db.rls import ensure_rls

        made = 0
        for server, database, schema in stores:
            try:
                async with admin_connection(self.db, server, database) as conn, conn.transaction():
                    await conn.execute(SET_PATH, schema)
                    n = int(await conn.fetchval(sql(ENSURE_PARTITIONS, schema), ahead))
                    if n:
                        await ensure_rls(conn, [schema], app_role)
            except STORE_MISSING as exc:  # dropped under us (a compensated onboarding...)
                _log.warning(
                    "audit partitions: store %s/%s missing: skipped (%s)",
                    database or "(main)",
                    schema,
                    exc,
                )
                continue
            made += n
        return made


def _view(r: Any) -> dict[str, Any]:
    return {**dict(r), "id": str(r["id"]), "occurred_at": r["occurred_at"].isoformat()}
