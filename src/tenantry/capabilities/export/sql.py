"""The export capability's SQL, as named constants (run in the tenant's unit of work, whose
tenant filter adds ``tenant_id``: no statement here names it but as a conflict target)."""

INSERT_EXPORT = """
INSERT INTO exports (id, source, format, columns, filters, notify,
                     idempotency_key, request_hash, schedule_id, requested_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
"""

BY_IDEMPOTENCY_KEY = "SELECT id, request_hash FROM exports WHERE idempotency_key = $1"

COLUMNS = """id, source, format, columns, filters, notify, status, rows_total, rows_done, bytes,
file_key, error, attempts, schedule_id, requested_by, created_at, started_at, finished_at,
expires_at"""

GET_EXPORT = f"SELECT {COLUMNS} FROM exports WHERE id = $1"

LIST_EXPORTS = f"""
SELECT {COLUMNS} FROM exports
WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
ORDER BY created_at DESC, id DESC
LIMIT $3
"""

LIST_RUNS = f"""
SELECT {COLUMNS} FROM exports WHERE schedule_id = $1
ORDER BY created_at DESC, id DESC LIMIT $2
"""

ACTIVE_EXPORTS = "SELECT count(*) FROM exports WHERE status IN ('queued', 'running')"

MARK_RUNNING = """
UPDATE exports SET status = 'running', started_at = coalesce(started_at, now()),
    attempts = $2, rows_done = 0, error = NULL
WHERE id = $1 AND status IN ('queued', 'running')
RETURNING id
"""

SET_TOTAL = "UPDATE exports SET rows_total = $2 WHERE id = $1"

SET_PROGRESS = "UPDATE exports SET rows_done = $2 WHERE id = $1 AND status = 'running'"

MARK_SUCCEEDED = """
UPDATE exports SET status = 'succeeded', rows_done = $2, bytes = $3, file_key = $4,
    finished_at = now(), expires_at = now() + make_interval(secs => $5)
WHERE id = $1 AND status = 'running'
RETURNING id
"""

MARK_FINISHED = """
UPDATE exports SET status = $2, error = $3, finished_at = now()
WHERE id = $1 AND status IN ('queued', 'running')
"""

EXPIRED_FILES = """
SELECT id, file_key FROM exports
WHERE file_key IS NOT NULL AND expires_at < now()
LIMIT 500
"""

FORGET_FILE = "UPDATE exports SET file_key = NULL WHERE id = $1"

#: The export history source (``exports.history``): the tenant's exports themselves.
HISTORY_SQL = (
    "SELECT id, source, format, status, rows_total, bytes, created_at, finished_at FROM exports"
)
