"""Named SQL of the kernel, loaded once. Parameterized; identifiers only from whitelists."""

from __future__ import annotations

ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtext('tenantry.migrate'), hashtext($1))"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    module     text NOT NULL,
    version    integer NOT NULL,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version)
)
"""

APPLIED = "SELECT module, version, checksum FROM schema_migrations"
SET_SEARCH_PATH = "SELECT set_config('search_path', $1, true)"
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"

MIGRATIONS_TABLE_EXISTS = "SELECT to_regclass($1) IS NOT NULL"

RECORD_MIGRATION = """
INSERT INTO schema_migrations (module, version, name, checksum) VALUES ($1, $2, $3, $4)
"""

SCHEMA_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
DATABASE_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)"
ROLE_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)"

FORMAT_IDENT_STMT = "SELECT format($1::text, $2::text, $3::text)"

TENANT_COLUMNS = """
id, slug, name, isolation, status, plan, server, database, schema_name, created_at
"""
SELECT_TENANTS = f"SELECT {TENANT_COLUMNS} FROM tenantry.tenants ORDER BY created_at, slug"
SELECT_TENANT_BY_ID = f"SELECT {TENANT_COLUMNS} FROM tenantry.tenants WHERE id = $1"
SELECT_TENANT_BY_SLUG = f"SELECT {TENANT_COLUMNS} FROM tenantry.tenants WHERE slug = $1"
INSERT_TENANT = """
INSERT INTO tenantry.tenants (id, slug, name, isolation, status, plan, server, database,
                              schema_name)
VALUES ($1, $2, $3, $4, 'provisioning', $5, $6, $7, $8)
"""
SET_TENANT_STATUS = """
UPDATE tenantry.tenants SET status = $2, updated_at = now() WHERE id = $1
RETURNING id
"""
# Suspend / resume, by the app role in the unit of work that audits it (the owner function
# of kernel/db/migrations/platform/0003; it also sends the catalog NOTIFY): returns the
# status it had.
SET_STATUS_AUDITED = "SELECT tenantry.set_tenant_status($1, $2)"
DELETE_TENANT = "DELETE FROM tenantry.tenants WHERE id = $1"
NOTIFY_CATALOG = "SELECT pg_notify('tenantry_catalog', $1)"

#: The row-level security policies' expressions (kernel/db/rls.ensure_rls): the unit of
#: work's tenant and its explicit platform scope, as the transaction set them.
TENANT_EXPR = "(SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)"

PLATFORM_EXPR = "(SELECT current_setting('app.scope', true) = 'platform')"

# Tenant-owned tables of the managed schemas present in one database, with their RLS state.
TENANT_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
       pg_get_userbyid(c.relowner) AS owner,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
               AND p.polname = 'tenant_isolation' AND NOT p.polpermissive) AS has_policy,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
               AND p.polname = 'app_access' AND p.polpermissive) AS has_grant_policy,
       c.relispartition AS partition
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND (n.nspname = 'tenantry' OR n.nspname = 'tenant_shared' OR n.nspname LIKE 'tenant\\_%')
  AND (n.nspname = ANY($1::text[]) OR $1 IS NULL)
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
              AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1, 2
"""

ROLE_SQL = """
SELECT r.rolsuper, r.rolbypassrls,
       pg_has_role(r.oid, o.oid, 'MEMBER') AS member_of_owner
FROM pg_roles r, pg_roles o
WHERE r.rolname = $1 AND o.rolname = $2
"""

OWNED_BY_APP_SQL = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND (n.nspname = 'tenantry' OR n.nspname LIKE 'tenant\\_%')
"""

FORMAT_VARIADIC_STMT = "SELECT format($1::text, VARIADIC $2::text[])"

#: The shape of a statement that can carry a unit of work's collected rows (kernel/db/commit.
#: join): ``WITH <ctes> SELECT 1``, as a regular expression.
CARRIER_STATEMENT = r"\s*WITH\s+(?P<ctes>.*\S)\s+SELECT\s+1\s*"
