"""The feature flags' SQL, as named constants (platform tables: flags and their per-tenant
targets)."""

from __future__ import annotations

LOAD_FLAGS = "SELECT name, description, default_on, plans, percentage FROM tenantry.flags"

LOAD_TARGETS = "SELECT flag, tenant, enabled FROM tenantry.flag_targets"

#: The values before a change, for its audit record.
SELECT_FLAG = (
    "SELECT name, description, default_on, plans, percentage FROM tenantry.flags WHERE name = $1"
)

SELECT_TARGET = "SELECT enabled FROM tenantry.flag_targets WHERE flag = $1 AND tenant = $2"

SELECT_FLAG_TARGETS = "SELECT tenant, enabled FROM tenantry.flag_targets WHERE flag = $1"

UPSERT_FLAG = """
INSERT INTO tenantry.flags (name, description, default_on, plans, percentage)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description,
    default_on = EXCLUDED.default_on, plans = EXCLUDED.plans,
    percentage = EXCLUDED.percentage, updated_at = now()
"""

ENSURE_FLAG = "INSERT INTO tenantry.flags (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"

SET_TARGET = """
INSERT INTO tenantry.flag_targets (flag, tenant, enabled) VALUES ($1, $2, $3)
ON CONFLICT (flag, tenant) DO UPDATE SET enabled = EXCLUDED.enabled
"""

CLEAR_TARGET = "DELETE FROM tenantry.flag_targets WHERE flag = $1 AND tenant = $2"

DELETE_FLAG = "DELETE FROM tenantry.flags WHERE name = $1 RETURNING name"
