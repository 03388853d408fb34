-- Background jobs and their schedules: tenant-owned rows in every tenant store (RLS is applied
-- by the migration runner). A worker claims them inside the tenant's own unit of work.
CREATE TABLE jobs (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at           timestamptz NOT NULL DEFAULT now(),
    worker           text,
    lease_until      timestamptz,
    heartbeat_at     timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    last_error       text,
    schedule_id      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- The claim's scan: runnable jobs by due time, and running jobs whose lease ran out.
CREATE INDEX jobs_runnable ON jobs (tenant_id, run_at) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (tenant_id, lease_until) WHERE status = 'running';

CREATE TABLE job_schedules (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text,
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    cron        text NOT NULL,
    timezone    text NOT NULL DEFAULT 'UTC',
    enabled     boolean NOT NULL DEFAULT true,
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX job_schedules_name ON job_schedules (tenant_id, name) WHERE name IS NOT NULL;
CREATE INDEX job_schedules_due ON job_schedules (tenant_id, next_run_at) WHERE enabled;
