-- A failed (compensated) onboarding removes the admin login it created, so creating the
-- tenant again with the same e-mail sets the new password instead of keeping the first one.
-- Only the login with exactly that id (the onboarding saga draws it before creating the
-- login, so a login that existed before can never match) and only while it belongs to no
-- other tenant. The application role may not delete logins otherwise: this function, owned
-- by the owner role, is all it gets. Platform scope only: a tenant-scoped caller would see
-- (through RLS) only its own memberships and could not tell whether others remain.
CREATE FUNCTION identity_forget_onboarding_login(p_user uuid, p_tenant uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = tenantry, pg_temp AS $$
BEGIN
    IF current_setting('app.scope', true) IS DISTINCT FROM 'platform' THEN
        RAISE EXCEPTION 'identity_forget_onboarding_login needs the platform scope'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM memberships WHERE user_id = p_user AND tenant_id = p_tenant;
    DELETE FROM users u
    WHERE u.id = p_user AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = p_user);
    RETURN FOUND;
END
$$;

REVOKE ALL ON FUNCTION identity_forget_onboarding_login(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION identity_forget_onboarding_login(uuid, uuid) TO ${app_role};
