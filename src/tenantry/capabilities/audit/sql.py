"""The audit log's SQL, as named constants. ``{s}`` is the store's schema (a catalog
identifier, quoted by ``log.sql``): the tables live in the tenant's store, reached from a
tenant's or a platform unit of work alike."""

from __future__ import annotations

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

#: ``uow.audit`` records at commit (AuditLog.write, or its share of the commit's one
#: statement): every record in one jsonb parameter, no chain lock, in the order recorded.
#: (Not ROWS FROM (jsonb_to_recordset(...) AS (...)): the tenant filter's sqlglot rewrite
#: prints that column definition list with an alias PostgreSQL refuses.)
PENDING_PART = """
INSERT INTO {s}.audit_pending (tenant_id, id, occurred_at, actor, actor_kind, client, ip,
    action, resource, outcome, request_id, trace_id, before, after, details)
SELECT $1, r.id, r.occurred_at, r.actor, r.actor_kind, r.client, r.ip, r.action, r.resource,
       r.outcome, r.request_id, r.trace_id, r.before, r.after, r.details
FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(doc, n)
CROSS JOIN LATERAL jsonb_to_record(e.doc) AS r(id uuid, occurred_at timestamptz,
    actor text, actor_kind text, client text, ip text, action text, resource text,
    outcome text, request_id text, trace_id text, before jsonb, after jsonb, details jsonb)
ORDER BY e.n
"""

HAS_PENDING = "SELECT EXISTS (SELECT 1 FROM {s}.audit_pending)"

#: The oldest pending records of the unit of work's tenant (RLS), taken out to be chained.
TAKE_PENDING = """
DELETE FROM {s}.audit_pending
WHERE pos IN (SELECT pos FROM {s}.audit_pending ORDER BY pos LIMIT $1)
RETURNING *
"""

SET_PATH = "SELECT set_config('search_path', $1, true)"

ENSURE_PARTITIONS = "SELECT {s}.audit_ensure_partitions($1)"

EVENTS_SQL = """
SELECT seq, id, occurred_at, actor, actor_kind, client, ip, action, resource, outcome,
       request_id, trace_id
FROM audit_events
"""
