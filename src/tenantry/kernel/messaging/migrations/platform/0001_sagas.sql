-- Sagas of the platform (tenant onboarding): persisted state machines. Platform data with no
-- tenant_id: only platform code (operators' commands and routes) reads it.
CREATE TABLE sagas (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    status      text NOT NULL
                CHECK (status IN ('running', 'compensating', 'completed', 'failed')),
    step        integer NOT NULL DEFAULT 0,
    data        jsonb NOT NULL DEFAULT '{}',
    log         jsonb NOT NULL DEFAULT '[]',
    error       text,
    owner       text,
    heartbeat   timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_open ON sagas (updated_at) WHERE status IN ('running', 'compensating');
GRANT SELECT, INSERT, UPDATE ON sagas TO ${app_role};
