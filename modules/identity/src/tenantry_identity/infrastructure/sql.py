"""Identity's SQL, as named constants. Platform tables are schema-qualified; ``roles`` lives
in the tenant's own store and is reached through the tenant's search_path.

No statement run in a tenant's unit of work (or a platform one seen as a tenant) names
``tenant_id``: the unit of work's tenant filter adds it (kernel/db/tenant_filter). Only
the statements of explicit platform scope, which reads across tenants by design (finding an
API client's tenant, "my tenants", forgetting an onboarding login), name it."""

from tenantry.capabilities.filtering import FieldSet, fields

LOGIN_ROW = """
SELECT u.id AS user_id, u.password_hash, u.status AS user_status,
       m.status AS member_status, m.roles
FROM tenantry.users u
JOIN tenantry.memberships m ON m.user_id = u.id
WHERE lower(u.email) = $1
"""
#: The password grant in one statement, in the tenant's own store when it is on the main
#: database (logins and memberships schema-qualified, roles through the search_path): the
#: login, its membership and its roles' actions.
LOGIN_ROW_WITH_ACTIONS = """
SELECT u.id AS user_id, u.password_hash, u.status AS user_status,
       m.status AS member_status, m.roles,
       ARRAY(SELECT DISTINCT unnest(r.actions) FROM roles r WHERE r.name = ANY(m.roles))
           AS actions
FROM tenantry.users u
JOIN tenantry.memberships m ON m.user_id = u.id
WHERE lower(u.email) = $1
"""
#: Platform scope: an API client's tenant is what this finds.
CLIENT_ROW = """
SELECT tenant_id, client_id, secret_hash, status, roles
FROM tenantry.api_clients WHERE client_id = $1
"""
#: A known API client's grant in one statement, in its tenant's store (as
#: ``LOGIN_ROW_WITH_ACTIONS``).
CLIENT_ROW_WITH_ACTIONS = """
SELECT c.client_id, c.secret_hash, c.status, c.roles,
       ARRAY(SELECT DISTINCT unnest(r.actions) FROM roles r WHERE r.name = ANY(c.roles))
           AS actions
FROM tenantry.api_clients c WHERE c.client_id = $1
"""
ROLE_ACTIONS = "SELECT DISTINCT unnest(actions) FROM roles WHERE name = ANY($1::text[])"
EXISTING_ROLES = "SELECT name FROM roles WHERE name = ANY($1::text[])"
UPSERT_ROLE = """
INSERT INTO roles (name, actions, description) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, name) DO NOTHING
"""
LIST_ROLES = "SELECT name, actions, description FROM roles ORDER BY name"
USER_BY_EMAIL = "SELECT id FROM tenantry.users WHERE lower(email) = $1"
INSERT_USER = """
INSERT INTO tenantry.users (id, email, password_hash) VALUES ($1, $2, $3)
ON CONFLICT (lower(email)) DO NOTHING RETURNING id
"""
#: The compensation of a failed onboarding: the admin login it created (and only that one).
#: Platform scope (the login is not the tenant's): the tenant is an argument of the function.
FORGET_ONBOARDING_LOGIN = "SELECT tenantry.identity_forget_onboarding_login($1, $2)"
INSERT_MEMBERSHIP = """
INSERT INTO tenantry.memberships (user_id, roles) VALUES ($1, $2)
ON CONFLICT (tenant_id, user_id) DO NOTHING RETURNING user_id
"""
#: Members list; the shared list query appends WHERE / ORDER BY / LIMIT (see MEMBER_FIELDS).
LIST_MEMBERS = """
SELECT u.id AS user_id, u.email, m.roles, m.status, m.created_at
FROM tenantry.memberships m JOIN tenantry.users u ON u.id = m.user_id
"""
#: One member's profile (the tenant filter adds the membership's tenant).
SELECT_MEMBER = """
SELECT u.id AS user_id, u.email, m.roles, m.status, m.created_at
FROM tenantry.memberships m JOIN tenantry.users u ON u.id = m.user_id
WHERE m.user_id = $1
"""
#: What a client may filter and sort the members list by (emails are stored lower-case).
MEMBER_FIELDS = FieldSet(
    "identity.members",
    id=fields.uuid("id", "u.id", key="user_id"),
    fields=[
        fields.text("email", "u.email", sortable=True),
        fields.enum("status", "m.status", ["active", "disabled"], sortable=True),
        fields.datetime("created_at", "m.created_at", sortable=True),
    ],
    default_sort="email",
)
SET_MEMBER_STATUS = """
UPDATE tenantry.memberships m SET status = $2
FROM (SELECT user_id, status FROM tenantry.memberships WHERE user_id = $1 FOR UPDATE) old
WHERE m.user_id = old.user_id RETURNING old.status
"""
INSERT_CLIENT = """
INSERT INTO tenantry.api_clients (id, client_id, secret_hash, name, roles)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, client_id, name, roles, status, created_at
"""
LIST_CLIENTS = """
SELECT id, client_id, name, roles, status, created_at FROM tenantry.api_clients
ORDER BY created_at, id
"""
SET_CLIENT_STATUS = """
UPDATE tenantry.api_clients c SET status = $2
FROM (SELECT id, status FROM tenantry.api_clients WHERE id = $1 FOR UPDATE) old
WHERE c.id = old.id RETURNING old.status
"""
#: Platform scope: a person's memberships across tenants (the join names tenant_id).
MY_TENANTS = """
SELECT t.id, t.slug, t.name, m.roles
FROM tenantry.memberships m JOIN tenantry.tenants t ON t.id = m.tenant_id
WHERE m.user_id = $1 AND m.status = 'active' AND t.status = 'active'
ORDER BY t.slug
"""
SELECT_ROLE = "SELECT name, actions, description FROM roles WHERE name = $1"
INSERT_ROLE = """
INSERT INTO roles (name, actions, description) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, name) DO NOTHING RETURNING name
"""
UPDATE_ROLE = "UPDATE roles SET actions = $2, description = $3 WHERE name = $1 RETURNING name"
DELETE_ROLE = "DELETE FROM roles WHERE name = $1 RETURNING name"
COUNT_MEMBERS = "SELECT count(*) FROM tenantry.memberships WHERE status = 'active'"
#: Is the token's user still an active member of the tenant (both the login and the
#: membership active)? The per-request principal status check (kernel/auth/status), on a miss.
USER_ACTIVE = """
SELECT EXISTS (
    SELECT 1 FROM tenantry.users u JOIN tenantry.memberships m ON m.user_id = u.id
    WHERE u.id = $1 AND u.status = 'active' AND m.status = 'active'
)
"""
CLIENT_ACTIVE = """
SELECT EXISTS (
    SELECT 1 FROM tenantry.api_clients
    WHERE client_id = $1 AND status = 'active'
)
"""
DELETE_MEMBERSHIP = """
DELETE FROM tenantry.memberships WHERE user_id = $1
RETURNING roles, status
"""
