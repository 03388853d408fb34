-- Platform-wide secrets (e.g. the key that signs pagination cursors), generated once by
-- `tenantry migrate` when `[security] secret_key` is not configured, so all processes agree.
CREATE TABLE platform_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON platform_secrets TO ${app_role};
