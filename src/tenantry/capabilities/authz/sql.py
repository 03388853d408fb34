"""The authorization capability's SQL, as named constants (run in the tenant's unit of
work: the tenant filter adds ``tenant_id``, which no statement names but as a conflict
target)."""

from __future__ import annotations

UPSERT_POLICY = """
INSERT INTO authz_policies (name, effect, actions, roles, condition, description)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, name) DO UPDATE SET effect = EXCLUDED.effect,
    actions = EXCLUDED.actions, roles = EXCLUDED.roles, condition = EXCLUDED.condition,
    description = EXCLUDED.description, updated_at = now()
RETURNING (xmax = 0) AS created
"""

SELECT_POLICY = """
SELECT name, effect, actions, roles, condition, description, updated_at
FROM authz_policies WHERE name = $1
"""

LIST_POLICIES = """
SELECT name, effect, actions, roles, condition, description, updated_at
FROM authz_policies ORDER BY name
"""

DELETE_POLICY = "DELETE FROM authz_policies WHERE name = $1 RETURNING name"

UPSERT_ATTRIBUTES = """
INSERT INTO authz_attributes (subject, attributes) VALUES ($1, $2)
ON CONFLICT (tenant_id, subject) DO UPDATE SET attributes = EXCLUDED.attributes,
    updated_at = now()
"""

SELECT_ATTRIBUTES = "SELECT attributes FROM authz_attributes WHERE subject = $1"

LOAD_ROLES = "SELECT name, actions FROM roles"

LOAD_POLICIES = "SELECT name, effect, actions, roles, condition FROM authz_policies"

LOAD_ATTRIBUTES = "SELECT subject, attributes FROM authz_attributes"
