-- Webhook endpoints of a tenant, and what was sent.
CREATE TABLE webhook_endpoints (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    url        text NOT NULL,
    secret     text NOT NULL,
    events     text[] NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE notification_log (
    tenant_id  uuid NOT NULL,
    id         bigserial NOT NULL,
    message_id uuid NOT NULL,
    channel    text NOT NULL,
    target     text NOT NULL,
    status     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
GRANT USAGE ON SEQUENCE notification_log_id_seq TO ${app_role};
