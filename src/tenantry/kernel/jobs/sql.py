"""The job runner's SQL, as named constants. Every statement runs inside a tenant's unit of
work (search_path = the tenant's store, ``app.tenant_id`` set), so RLS scopes each one."""

ENQUEUE = """
INSERT INTO jobs (tenant_id, id, kind, payload, max_attempts, run_at, schedule_id)
VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7)
"""

# One runnable job of the kinds this worker handles: queued and due, or running with a lease
# that ran out (its worker died). SKIP LOCKED: concurrent workers never wait on each other.
CLAIM = """
WITH c AS (
    SELECT id FROM jobs
    WHERE kind = ANY($3::text[])
      AND ((status = 'queued' AND run_at <= now())
           OR (status = 'running' AND lease_until < now()))
    ORDER BY run_at, created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET status = 'running', attempts = j.attempts + 1, worker = $1,
    lease_until = now() + make_interval(secs => $2), heartbeat_at = now(),
    started_at = coalesce(j.started_at, now())
FROM c WHERE j.id = c.id
RETURNING j.id, j.kind, j.payload, j.attempts, j.max_attempts, j.cancel_requested,
          j.schedule_id, j.created_at
"""

HEARTBEAT = """
UPDATE jobs SET lease_until = now() + make_interval(secs => $3), heartbeat_at = now()
WHERE id = $1 AND worker = $2 AND status = 'running'
RETURNING cancel_requested
"""

FINISH = """
UPDATE jobs SET status = $3, finished_at = now(), lease_until = NULL, last_error = $4
WHERE id = $1 AND worker = $2 AND status = 'running'
"""

RETRY = """
UPDATE jobs SET status = 'queued', run_at = now() + make_interval(secs => $3),
    last_error = $4, worker = NULL, lease_until = NULL
WHERE id = $1 AND worker = $2 AND status = 'running'
"""

CANCEL = """
UPDATE jobs
SET cancel_requested = true,
    status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
    finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
WHERE id = $1 AND status IN ('queued', 'running')
RETURNING status
"""

GET = """
SELECT id, kind, payload, status, attempts, max_attempts, run_at, worker, lease_until,
       cancel_requested, last_error, schedule_id, created_at, started_at, finished_at
FROM jobs WHERE id = $1
"""

ACTIVE_COUNT_OF_KIND = """
SELECT count(*) FROM jobs WHERE kind = $1 AND status IN ('queued', 'running')
"""

INSERT_SCHEDULE = """
INSERT INTO job_schedules (tenant_id, id, name, kind, payload, cron, timezone, next_run_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, name) WHERE name IS NOT NULL DO NOTHING
"""

DUE_SCHEDULES = """
SELECT id, kind, payload, cron, timezone, next_run_at FROM job_schedules
WHERE enabled AND next_run_at <= now()
ORDER BY next_run_at
LIMIT 20
FOR UPDATE SKIP LOCKED
"""

ADVANCE_SCHEDULE = """
UPDATE job_schedules SET next_run_at = $2, last_run_at = now() WHERE id = $1
"""

GET_SCHEDULE = """
SELECT id, name, kind, payload, cron, timezone, enabled, next_run_at, last_run_at, created_at
FROM job_schedules WHERE id = $1
"""

LIST_SCHEDULES_OF_KIND = """
SELECT id, name, kind, payload, cron, timezone, enabled, next_run_at, last_run_at, created_at
FROM job_schedules WHERE kind = $1 ORDER BY created_at DESC, id DESC LIMIT $2
"""

DISABLE_SCHEDULE = """
UPDATE job_schedules SET enabled = false WHERE id = $1 AND kind = $2 RETURNING id
"""

NOTIFY_CHANNEL = "tenantry_jobs"

#: The tenant's queued jobs by kind (due or not), for the jobs-queued gauge.
QUEUED_BY_KIND = "SELECT kind, count(*) AS n FROM jobs WHERE status = 'queued' GROUP BY kind"
