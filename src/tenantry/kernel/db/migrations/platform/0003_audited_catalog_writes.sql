-- The two catalog writes an operator makes after onboarding, as functions the application
-- role may call: a tenant's status (suspend, resume) and a signing-key rotation. The app
-- role may only read `tenants` and `signing_keys`; these functions, owned by the owner role,
-- are all it gets. They exist so that the change and its audit record are one transaction:
-- the caller runs them in the unit of work (app role, pooled) that also writes the record
-- (kernel/tenancy/audit.PlatformAudit), instead of on an owner connection that commits on its
-- own (an owner cannot write a tenant's audit rows: RLS admits the application role only).

-- Set a tenant's status; returns the status it had (NULL: no such tenant). Only a
-- transaction seen as that tenant (the one whose log records the change) or in explicit
-- platform scope (a tenant still being provisioned has no log yet) may call it.
CREATE FUNCTION set_tenant_status(p_tenant uuid, p_status text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tenantry, pg_temp AS $$
DECLARE
    prev text;
BEGIN
    IF current_setting('app.scope', true) IS DISTINCT FROM 'platform'
       AND current_setting('app.tenant_id', true) IS DISTINCT FROM p_tenant::text THEN
        RAISE EXCEPTION 'set_tenant_status: a transaction of tenant % or the platform scope',
            p_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_status NOT IN ('active', 'suspended') THEN
        RAISE EXCEPTION 'set_tenant_status: % is not active or suspended', p_status
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT status INTO prev FROM tenants WHERE id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE tenants SET status = p_status, updated_at = now() WHERE id = p_tenant;
    PERFORM pg_notify('tenantry_catalog', p_tenant::text);
    RETURN prev;
END
$$;

REVOKE ALL ON FUNCTION set_tenant_status(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_tenant_status(uuid, text) TO ${app_role};

-- Add a signing key and retire every other active one (serialized by an advisory lock);
-- returns the kids retired.
CREATE FUNCTION rotate_signing_key(p_kid text, p_alg text, p_pem text, p_jwk jsonb)
RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tenantry, pg_temp AS $$
DECLARE
    retired text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tenantry.keys'));
    INSERT INTO signing_keys (kid, alg, private_pem, public_jwk)
    VALUES (p_kid, p_alg, p_pem, p_jwk);
    WITH r AS (
        UPDATE signing_keys SET retired_at = now()
        WHERE retired_at IS NULL AND kid <> p_kid
        RETURNING kid
    )
    SELECT coalesce(array_agg(kid ORDER BY kid), '{}') INTO retired FROM r;
    RETURN retired;
END
$$;

REVOKE ALL ON FUNCTION rotate_signing_key(text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rotate_signing_key(text, text, text, jsonb) TO ${app_role};
