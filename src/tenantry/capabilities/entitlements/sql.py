"""The entitlements capability's SQL, as named constants (per-tenant plan overrides, a
platform table)."""

from __future__ import annotations

SELECT_OVERRIDE = "SELECT overrides FROM tenantry.plan_overrides WHERE tenant = $1"

UPSERT_OVERRIDE = """
INSERT INTO tenantry.plan_overrides (tenant, overrides) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET overrides = EXCLUDED.overrides, updated_at = now()
"""
