-- Feature flags: platform configuration set by operators (CLI or admin API). Targets name a
-- tenant in column `tenant` (read in platform scope into every process's snapshot); tenants
-- only ever see their own evaluated values.
CREATE TABLE flags (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    default_on  boolean NOT NULL DEFAULT false,
    plans       text[] NOT NULL DEFAULT '{}',
    percentage  integer NOT NULL DEFAULT 0 CHECK (percentage BETWEEN 0 AND 100),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE flag_targets (
    flag    text NOT NULL REFERENCES flags (name) ON DELETE CASCADE,
    tenant  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    enabled boolean NOT NULL,
    PRIMARY KEY (flag, tenant)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON flags, flag_targets TO ${app_role};
