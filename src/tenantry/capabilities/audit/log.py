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

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from tenantry.capabilities.audit import chain
from tenantry.capabilities.audit.context import current_meta
from tenantry.capabilities.filtering import FieldSet, fields
from tenantry.capabilities.pagination import ListQuery
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.catalog import STORE_MISSING
from tenantry.kernel.tenancy.context import Principal, current_principal
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)

# These name tenant_id themselves: it is part of every hashed record (chain.py), and the head
# row is nothing but its tenant_id. The unit of work's tenant filter still adds its own
# condition and lets a written tenant_id through only if it is the unit's tenant.
LOCK_HEAD = """
INSERT INTO {s}.audit_heads AS h (tenant_id) VALUES ($1)
ON CONFLICT (tenant_id) DO UPDATE SET seq = h.seq
RETURNING seq, hash
"""
INSERT_EVENT = """
INSERT INTO {s}.audit_events (tenant_id, seq, id, occurred_at, actor, actor_kind, client, ip,
    action, resource, outcome, request_id, trace_id, before, after, details, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
"""
SET_HEAD = "UPDATE {s}.audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1"
SELECT_HEAD = "SELECT seq, hash FROM {s}.audit_heads WHERE tenant_id = $1"
SELECT_CHAIN = """
SELECT * FROM {s}.audit_events WHERE seq > $1 ORDER BY seq LIMIT $2
"""
#: The query endpoint's base: the filter engine appends WHERE / ORDER BY / LIMIT.
QUERY_EVENTS = """
SELECT e.seq, e.id, e.occurred_at, e.actor, e.actor_kind, e.client, e.ip, e.action,
       e.resource, e.outcome, e.request_id, e.trace_id, e.before, e.after, e.details
FROM {s}.audit_events e
"""
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
LIST_EVENTS = """
SELECT seq, id, occurred_at, actor, actor_kind, client, ip, action, resource, outcome,
       request_id, trace_id, before, after, details
FROM {s}.audit_events
WHERE ($1::bigint IS NULL OR seq < $1)
  AND ($2::text IS NULL OR action = $2)
  AND ($3::text IS NULL OR actor = $3)
  AND ($4::text IS NULL OR outcome = $4)
  AND ($5::timestamptz IS NULL OR occurred_at >= $5)
  AND ($6::timestamptz IS NULL OR occurred_at < $6)
ORDER BY seq DESC LIMIT $7
"""
SET_PATH = "SELECT set_config('search_path', $1, true)"
ENSURE_PARTITIONS = "SELECT {s}.audit_ensure_partitions($1)"


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
    """Append one event in ``uow``'s transaction (see the module docstring for the one case
    where that cannot be: a platform unit of work of a database-mode tenant)."""
    tenant = uow.tenant
    if uow.platform and tenant is not None and tenant.database is not None:
        e = dataclasses.replace(e, details={**(e.details or {}), "atomic": False})
        db: Database = uow.db
        async with db.tenant_unit_of_work(tenant) as own:
            return await append(own, [e])
    return await append(uow, [e])


async def append(uow: UnitOfWork, events: Sequence[Event]) -> int:
    """Chain and insert ``events`` in ``uow``'s transaction; return the last seq."""
    tenant = uow.tenant
    if tenant is None:
        raise RuntimeError("audit records belong to a tenant: use a tenant unit of work")
    s = tenant.schema
    head = await uow.fetchrow(sql(LOCK_HEAD, s), tenant.id)
    assert head is not None
    seq, prev = int(head["seq"]), bytes(head["hash"])
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


class AuditLog:
    """The audit service: appends outside a caller's transaction, queries, verification."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append_for(self, tenant: Tenant, events: Sequence[Event]) -> int:
        async with self.db.tenant_unit_of_work(tenant) as uow:
            return await append(uow, events)

    async def events(
        self, tenant: Tenant, *, before_seq: int | None, limit: int, **filters: Any
    ) -> list[dict[str, Any]]:
        async with self.db.tenant_unit_of_work(tenant) as uow:
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
        async with self.db.tenant_unit_of_work(tenant) as uow:
            return await q.fetch_page(uow, sql(QUERY_EVENTS, tenant.schema), serialize=_json)

    async def rows(self, tenant: Tenant, batch: int = 5000) -> AsyncIterator[Mapping[str, Any]]:
        last = 0
        while True:
            async with self.db.tenant_unit_of_work(tenant) as uow:
                rows = await uow.fetch(sql(SELECT_CHAIN, tenant.schema), last, batch)
            for r in rows:
                yield dict(r)
            if len(rows) < batch:
                return
            last = int(rows[-1]["seq"])

    async def verify(self, tenant: Tenant) -> tuple[int, list[str]]:
        """(records checked, problems); no problems = the chain is intact."""
        async with self.db.tenant_unit_of_work(tenant) as uow:
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
                async with self.db.admin_connection(server, database) as conn, conn.transaction():
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


def _json(r: Any) -> dict[str, Any]:
    return {**dict(r), "id": str(r["id"]), "occurred_at": r["occurred_at"].isoformat()}
