-- Per-tenant overrides of the plan definition (config `[plans.<name>]`), set by operators.
-- Platform configuration, not tenant data: the column is `tenant`, read in platform scope.
CREATE TABLE plan_overrides (
    tenant     uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    overrides  jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE, DELETE ON plan_overrides TO ${app_role};
