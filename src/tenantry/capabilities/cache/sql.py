"""Named SQL of the cache (functions in migrations/platform/0001_cache.sql)."""

from __future__ import annotations

GET = "SELECT tenantry.cache_get($1, $2)"
SET = "SELECT tenantry.cache_set($1, $2, $3, $4, $5, $6)"
DELETE = "SELECT tenantry.cache_delete($1, $2, $3)"
INVALIDATE_TAGS = "SELECT tenantry.cache_invalidate_tags($1, $2, $3)"
# Run in the platform scope (the sweep spans tenants).
SWEEP = """
DELETE FROM tenantry.cache_entries
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM tenantry.cache_entries WHERE expires_at < now() LIMIT $1
))
"""
UPSERT_STATS = """
INSERT INTO tenantry.cache_stats AS s (prefix, hits, misses, sets) VALUES ($1, $2, $3, $4)
ON CONFLICT (prefix) DO UPDATE SET
    hits = s.hits + EXCLUDED.hits, misses = s.misses + EXCLUDED.misses,
    sets = s.sets + EXCLUDED.sets, updated_at = now()
"""
STATS = """
SELECT prefix, hits, misses, sets, updated_at,
       round(hits::numeric / nullif(hits + misses, 0) * 100, 2) AS hit_rate_pct
FROM tenantry.cache_stats ORDER BY hits + misses DESC
"""
CHANNEL = "tenantry_cache"
