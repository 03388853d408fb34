-- Roles of a tenant: a name granting actions ("ledger:write", "ledger:*", "*").
CREATE TABLE roles (
    tenant_id   uuid NOT NULL,
    name        text NOT NULL,
    actions     text[] NOT NULL DEFAULT '{}',
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
