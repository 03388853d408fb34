-- The example module's one table (RLS added by the platform's migration runner).
CREATE TABLE example_notes (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX example_notes_created ON example_notes (tenant_id, created_at, id);
