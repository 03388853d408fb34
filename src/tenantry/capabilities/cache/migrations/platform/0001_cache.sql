-- The PostgreSQL cache: an UNLOGGED tenant-owned table in the platform schema (RLS applied
-- by the migration runner like every table with tenant_id; the platform scope is admitted
-- only for the expired-row sweep), hit/miss statistics per key prefix, and functions that
-- set the tenant and run one statement in a single round trip.
CREATE UNLOGGED TABLE cache_entries (
    tenant_id  uuid NOT NULL,
    key        text NOT NULL,
    value      bytea NOT NULL,
    tags       text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX cache_entries_expiry ON cache_entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX cache_entries_tags ON cache_entries USING gin (tags);

CREATE TABLE cache_stats (
    prefix     text PRIMARY KEY,
    hits       bigint NOT NULL DEFAULT 0,
    misses     bigint NOT NULL DEFAULT 0,
    sets       bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Each function enters the given tenant transaction-locally (called outside an explicit
-- transaction, the setting ends with the statement), runs under RLS as the caller (SECURITY
-- INVOKER), and restores the previous settings in case it is called inside a transaction.
CREATE FUNCTION cache_get(p_tenant uuid, p_key text) RETURNS bytea
LANGUAGE plpgsql AS $$
DECLARE
    prev_t text := current_setting('app.tenant_id', true);
    prev_s text := current_setting('app.scope', true);
    v bytea;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.scope', 'tenant', true);
    SELECT e.value INTO v FROM tenantry.cache_entries e
    WHERE e.tenant_id = p_tenant AND e.key = p_key
      AND (e.expires_at IS NULL OR e.expires_at > now());
    PERFORM set_config('app.tenant_id', coalesce(prev_t, ''), true),
            set_config('app.scope', coalesce(prev_s, ''), true);
    RETURN v;
END $$;

CREATE FUNCTION cache_set(
    p_tenant uuid, p_key text, p_value bytea, p_ttl_s double precision, p_tags text[],
    p_origin text
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    prev_t text := current_setting('app.tenant_id', true);
    prev_s text := current_setting('app.scope', true);
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.scope', 'tenant', true);
    INSERT INTO tenantry.cache_entries AS e (tenant_id, key, value, tags, expires_at, updated_at)
    VALUES (p_tenant, p_key, p_value, coalesce(p_tags, '{}'),
            CASE WHEN p_ttl_s IS NULL THEN NULL
                 ELSE now() + make_interval(secs => p_ttl_s) END,
            now())
    ON CONFLICT (tenant_id, key) DO UPDATE SET
        value = EXCLUDED.value, tags = EXCLUDED.tags, expires_at = EXCLUDED.expires_at,
        updated_at = EXCLUDED.updated_at;
    PERFORM pg_notify('tenantry_cache', p_origin || '|k|' || p_tenant::text || '|' || p_key);
    PERFORM set_config('app.tenant_id', coalesce(prev_t, ''), true),
            set_config('app.scope', coalesce(prev_s, ''), true);
END $$;

CREATE FUNCTION cache_delete(p_tenant uuid, p_key text, p_origin text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    prev_t text := current_setting('app.tenant_id', true);
    prev_s text := current_setting('app.scope', true);
    n integer;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.scope', 'tenant', true);
    DELETE FROM tenantry.cache_entries WHERE tenant_id = p_tenant AND key = p_key;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_notify('tenantry_cache', p_origin || '|k|' || p_tenant::text || '|' || p_key);
    PERFORM set_config('app.tenant_id', coalesce(prev_t, ''), true),
            set_config('app.scope', coalesce(prev_s, ''), true);
    RETURN n > 0;
END $$;

CREATE FUNCTION cache_invalidate_tags(p_tenant uuid, p_tags text[], p_origin text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    prev_t text := current_setting('app.tenant_id', true);
    prev_s text := current_setting('app.scope', true);
    n integer;
    tag text;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.scope', 'tenant', true);
    DELETE FROM tenantry.cache_entries WHERE tenant_id = p_tenant AND tags && p_tags;
    GET DIAGNOSTICS n = ROW_COUNT;
    FOREACH tag IN ARRAY p_tags LOOP
        PERFORM pg_notify('tenantry_cache', p_origin || '|t|' || p_tenant::text || '|' || tag);
    END LOOP;
    PERFORM set_config('app.tenant_id', coalesce(prev_t, ''), true),
            set_config('app.scope', coalesce(prev_s, ''), true);
    RETURN n;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO ${app_role};
GRANT SELECT, INSERT, UPDATE ON cache_stats TO ${app_role};
