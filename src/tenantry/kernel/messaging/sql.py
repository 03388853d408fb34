"""Named SQL of messaging. Parameterized; table names unqualified (the unit of work's
search_path picks the tenant's store)."""

from __future__ import annotations

CLAIM_OUTBOX = """
SELECT id, message_id, name, kind, target, payload, headers, attempts, created_at
FROM outbox
WHERE delivered_at IS NULL AND available_at <= now()
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

#: The tenant's undelivered messages and the oldest one's commit time (the pending index).
OUTBOX_PENDING = """
SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE delivered_at IS NULL
"""

MARK_DELIVERED = "UPDATE outbox SET delivered_at = now() WHERE id = ANY($1::bigint[])"

RETRY_LATER = """
UPDATE outbox SET attempts = attempts + 1, last_error = $2,
       available_at = now() + make_interval(secs => $3)
WHERE id = $1
"""

# The transport (not the message) failed, e.g. the broker is restarting: not an attempt.
RETRY_TRANSIENT = """
UPDATE outbox SET last_error = $2, available_at = now() + make_interval(secs => $3)
WHERE id = $1
"""

MOVE_TO_DEAD = """
WITH gone AS (DELETE FROM outbox WHERE id = $1 RETURNING *)
INSERT INTO outbox_dead (tenant_id, message_id, name, kind, target, payload, headers, attempts,
                         last_error, created_at)
SELECT tenant_id, message_id, name, kind, target, payload, headers, attempts + 1, $2, created_at
FROM gone
"""

PRUNE_DELIVERED = """
DELETE FROM outbox
WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(secs => $1)
"""

PENDING_COUNT = "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"

LIST_DEAD = """
SELECT id, message_id, name, kind, target, attempts, last_error, created_at, died_at,
       payload, headers
FROM outbox_dead ORDER BY id
"""

# Replay and discard return what the audit record names (never the payload: tenant data).
REPLAY_DEAD = """
WITH gone AS (DELETE FROM outbox_dead WHERE id = $1 RETURNING *),
ins AS (
    INSERT INTO outbox (tenant_id, message_id, name, kind, target, payload, headers)
    SELECT tenant_id, message_id, name, kind, target, payload, headers FROM gone
    RETURNING tenant_id, message_id
)
SELECT g.message_id, g.name, g.kind, g.target, g.attempts, g.last_error,
       pg_notify('tenantry_outbox', i.tenant_id::text)
FROM gone g JOIN ins i ON i.message_id = g.message_id
"""

DISCARD_DEAD = """
DELETE FROM outbox_dead WHERE id = $1
RETURNING message_id, name, kind, target, attempts, last_error
"""

INSERT_DEAD = """
INSERT INTO outbox_dead (tenant_id, message_id, name, kind, target, payload, headers, attempts,
                         last_error, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
"""

# The inbox: a row per (consumer, message) written in the handler's transaction.
# The same for a batch, in one round trip: returns the ids that were new.
INBOX_CLAIM_MANY = """
INSERT INTO inbox (tenant_id, consumer, message_id)
SELECT $1, $2, m FROM unnest($3::uuid[]) AS m
ON CONFLICT DO NOTHING
RETURNING message_id
"""

INBOX_CLAIM = """
INSERT INTO inbox (tenant_id, consumer, message_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""

# -- sagas (platform schema) -----------------------------------------------------------------
SAGA_INSERT = """
INSERT INTO tenantry.sagas (id, kind, status, step, data, owner)
VALUES ($1, $2, 'running', 0, $3, $4)
"""
SAGA_SAVE = """
UPDATE tenantry.sagas SET status = $2, step = $3, data = $4, log = log || $5::jsonb,
       error = $6, updated_at = now(), heartbeat = now()
WHERE id = $1
"""
SAGA_GET = "SELECT * FROM tenantry.sagas WHERE id = $1"
SAGA_LIST = """
SELECT id, kind, status, step, error, created_at, updated_at FROM tenantry.sagas
ORDER BY created_at DESC LIMIT $1
"""
# Open sagas whose runner stopped beating: a crashed process; claimed with SKIP LOCKED so two
# resumers never run the same saga.
SAGA_CLAIM_STALE = """
SELECT * FROM tenantry.sagas
WHERE status IN ('running', 'compensating') AND heartbeat < now() - make_interval(secs => $1)
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
SAGA_TAKE = "UPDATE tenantry.sagas SET owner = $2, heartbeat = now() WHERE id = $1"
SAGA_BEAT = "UPDATE tenantry.sagas SET heartbeat = now() WHERE id = $1"

# Everything a unit of work published, at its commit (kernel/messaging/outbox): events and bus
# commands in one multi-row INSERT in publishing order (the wake-up follows the COMMIT:
# NOTIFY_OUTBOX). ``{schema}`` is empty
# for a unit of work in the tenant's store (its search_path names the store), or the store's
# quoted schema and a dot from a platform unit of work (kernel/db/commit.tenant_store). The
# INSERT is also the outbox's share of the commit's one statement (kernel/db/commit.combine)
# or of a service's last write (kernel/db/commit.join).
OUTBOX_ROWS_PART = """
INSERT INTO {schema}outbox (tenant_id, message_id, name, kind, target, payload, headers)
SELECT $1, m.message_id, m.name, m.kind, m.target, m.payload::jsonb, m.headers::jsonb
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
     WITH ORDINALITY AS m(message_id, name, kind, target, payload, headers, n)
ORDER BY m.n
"""

#: The coalesced wake-up after commits (kernel/messaging/outbox.OutboxWake): one statement
#: for every tenant of a database that committed outbox rows during the interval.
NOTIFY_OUTBOX = "SELECT pg_notify($1, t) FROM unnest($2::text[]) AS t"
