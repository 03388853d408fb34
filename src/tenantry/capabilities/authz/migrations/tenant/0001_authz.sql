-- Tenant authorization policies (ABAC conditions over principal/resource attributes) and
-- the attributes of a tenant's principals (e.g. their department). Roles (RBAC) live in
-- identity's `roles` table.
CREATE TABLE authz_policies (
    tenant_id   uuid NOT NULL,
    name        text NOT NULL,
    effect      text NOT NULL CHECK (effect IN ('allow', 'deny')),
    actions     text[] NOT NULL,
    roles       text[] NOT NULL DEFAULT '{}',
    condition   jsonb,
    description text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE authz_attributes (
    tenant_id  uuid NOT NULL,
    subject    text NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subject)
);
