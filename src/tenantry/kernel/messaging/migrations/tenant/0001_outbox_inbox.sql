-- Messaging, in every tenant store: the outbox (written in the publisher's transaction), its
-- dead letters, and the inbox (processed message ids per consumer). Tenant-owned: the
-- migration runner gives them RLS like every table with a tenant_id.
CREATE TABLE outbox (
    tenant_id    uuid NOT NULL,
    id           bigserial NOT NULL,
    message_id   uuid NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL DEFAULT 'event' CHECK (kind IN ('event', 'command')),
    target       text,
    payload      jsonb NOT NULL,
    headers      jsonb NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at timestamptz,
    last_error   text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_pending ON outbox (tenant_id, available_at, id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (tenant_id, delivered_at) WHERE delivered_at IS NOT NULL;

CREATE TABLE outbox_dead (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    message_id  uuid NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL,
    target      text,
    payload     jsonb NOT NULL,
    headers     jsonb NOT NULL,
    attempts    integer NOT NULL,
    last_error  text,
    created_at  timestamptz NOT NULL,
    died_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE inbox (
    tenant_id    uuid NOT NULL,
    consumer     text NOT NULL,
    message_id   uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, consumer, message_id)
);

GRANT USAGE ON SEQUENCE outbox_id_seq TO ${app_role};
