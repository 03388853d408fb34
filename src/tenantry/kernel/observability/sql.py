"""Named SQL of observability (platform schema ``tenantry``); always parameterized."""

from __future__ import annotations

# Upsert the group; a resolved group that recurs is reopened (prev.status = 'resolved').
# ``prev`` reads the statement's snapshot (no FOR UPDATE: a row locked-then-updated by the
# same command would be skipped); two racing captures may both report the reopening.
UPSERT_GROUP = """
WITH prev AS (
    SELECT status FROM tenantry.error_groups WHERE fingerprint = $1 AND environment = $2
)
INSERT INTO tenantry.error_groups AS g
    (fingerprint, environment, error_type, message, culprit, first_release, release, occurrences)
VALUES ($1, $2, $3, $4, $5, $6, $6, 1)
ON CONFLICT (fingerprint, environment) DO UPDATE SET
    last_seen = now(),
    occurrences = g.occurrences + 1,
    message = EXCLUDED.message,
    release = coalesce(EXCLUDED.release, g.release),
    status = CASE WHEN g.status = 'resolved' THEN 'unresolved' ELSE g.status END,
    resolved_at = CASE WHEN g.status = 'resolved' THEN NULL ELSE g.resolved_at END
RETURNING id, occurrences, coalesce((SELECT status FROM prev) = 'resolved', false) AS reopened
"""

INSERT_OCCURRENCE = """
INSERT INTO tenantry.error_occurrences
    (group_id, message, stack, request, context, tenant, principal, request_id, trace_id, release)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

_GROUP_COLS = """
id, fingerprint, environment, error_type, message, culprit, status, occurrences,
first_seen, last_seen, first_release, release, resolved_at
"""

LIST_GROUPS = f"""
SELECT {_GROUP_COLS} FROM tenantry.error_groups
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR environment = $2)
ORDER BY last_seen DESC LIMIT $3
"""

GET_GROUP = f"SELECT {_GROUP_COLS} FROM tenantry.error_groups WHERE id = $1"

LIST_OCCURRENCES = """
SELECT occurred_at, message, stack, request, context, tenant, principal, request_id,
       trace_id, release
FROM tenantry.error_occurrences WHERE group_id = $1
ORDER BY occurred_at DESC LIMIT $2
"""

# A triage: the group's status, its row locked until the change commits.
LOCK_GROUP_STATUS = "SELECT status FROM tenantry.error_groups WHERE id = $1 FOR UPDATE"

SET_STATUS = """
UPDATE tenantry.error_groups
SET status = $2, resolved_at = CASE WHEN $2 = 'resolved' THEN now() END
WHERE id = $1
"""

# Partition maintenance (run as the owner role with search_path = tenantry).
ENSURE_ERROR_PARTITIONS = "SELECT tenantry.ensure_error_occurrence_partitions($1)"
DROP_ERROR_PARTITIONS = "SELECT tenantry.drop_old_error_occurrence_partitions($1)"
ENSURE_SPAN_PARTITIONS = "SELECT tenantry.ensure_range_partitions('otel_spans', 'day', $1)"
DROP_SPAN_PARTITIONS = "SELECT tenantry.drop_range_partitions('otel_spans', 'day', $1)"
DELETE_OLD_REQUEST_MINUTES = (
    "DELETE FROM tenantry.request_minutes WHERE minute < now() - $1::interval"
)
SET_SEARCH_PATH = "SELECT set_config('search_path', 'tenantry', false)"

# Per-minute request metrics: counts add up across processes.
UPSERT_REQUEST_MINUTE = """
INSERT INTO tenantry.request_minutes AS m
    (minute, method, route, total, server_errors, client_errors, duration_ms, buckets)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (minute, method, route) DO UPDATE SET
    total = m.total + EXCLUDED.total,
    server_errors = m.server_errors + EXCLUDED.server_errors,
    client_errors = m.client_errors + EXCLUDED.client_errors,
    duration_ms = m.duration_ms + EXCLUDED.duration_ms,
    buckets = ARRAY(
        SELECT a + b FROM unnest(m.buckets, EXCLUDED.buckets) WITH ORDINALITY AS u(a, b, i)
        ORDER BY i
    )
"""

# Per (method, route, segment): segments 0..4 are disjoint age ranges (see slo.SEGMENTS).
_SEGMENT = """CASE WHEN minute >= $1::timestamptz - interval '5 minutes' THEN 0
            WHEN minute >= $1::timestamptz - interval '30 minutes' THEN 1
            WHEN minute >= $1::timestamptz - interval '1 hour' THEN 2
            WHEN minute >= $1::timestamptz - interval '6 hours' THEN 3
            ELSE 4 END"""

REQUEST_SEGMENT_TOTALS = f"""
SELECT method, route, {_SEGMENT} AS seg,
       sum(total)::bigint AS total, sum(server_errors)::bigint AS server_errors,
       sum(client_errors)::bigint AS client_errors
FROM tenantry.request_minutes
WHERE minute > $1::timestamptz - $2::interval AND minute <= $1::timestamptz
GROUP BY 1, 2, 3
"""

REQUEST_SEGMENT_BUCKETS = f"""
SELECT r.method, r.route, r.seg, u.i::int AS i, sum(u.b)::bigint AS n
FROM (SELECT method, route, {_SEGMENT} AS seg, buckets
      FROM tenantry.request_minutes
      WHERE minute > $1::timestamptz - $2::interval AND minute <= $1::timestamptz) r,
     unnest(r.buckets) WITH ORDINALITY AS u(b, i)
GROUP BY 1, 2, 3, 4
"""

INSERT_SPANS = """
INSERT INTO tenantry.otel_spans
    (trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ms,
     status, attributes, tenant, service)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT DO NOTHING
"""

# The cache capability's counters (capabilities/cache: flushed by every process), read for
# the cache hit-rate SLOs.
CACHE_STATS_EXISTS = "SELECT to_regclass('tenantry.cache_stats') IS NOT NULL"
CACHE_COUNTS = "SELECT prefix, hits, misses FROM tenantry.cache_stats"
