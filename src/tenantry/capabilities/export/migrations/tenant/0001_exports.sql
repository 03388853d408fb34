-- Exports: one row per requested export (tenant-owned; RLS applied by the migration runner).
-- The export's id is also the id of the job that produces it.
CREATE TABLE exports (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    source          text NOT NULL,
    format          text NOT NULL CHECK (format IN ('csv', 'xlsx', 'pdf', 'parquet')),
    columns         text[] NOT NULL,
    filters         jsonb NOT NULL DEFAULT '{}'::jsonb,
    notify          jsonb,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    rows_total      bigint,
    rows_done       bigint NOT NULL DEFAULT 0,
    bytes           bigint,
    file_key        text,
    error           text,
    attempts        integer NOT NULL DEFAULT 0,
    idempotency_key text,
    request_hash    text,
    schedule_id     uuid,
    requested_by    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    expires_at      timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX exports_idempotency ON exports (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX exports_recent ON exports (tenant_id, created_at DESC, id DESC);
CREATE INDEX exports_by_schedule ON exports (tenant_id, schedule_id, created_at DESC)
    WHERE schedule_id IS NOT NULL;
CREATE INDEX exports_expiring ON exports (tenant_id, expires_at) WHERE file_key IS NOT NULL;
