-- Revocation: every change that can end a principal's access (a login disabled or deleted,
-- a membership disabled or removed, an API client disabled or deleted) notifies every
-- process at commit, which drops its cached "still active?" answer (kernel/auth/status).
-- Payload: '<tenant_id>:<subject>' ('*' for a login: all its tenants); the subject is what
-- tokens carry in `sub` (the user id, or 'client:<client_id>'). Only status changes and
-- deletes notify: NOTIFY serializes commits, so inserts and role edits stay silent.

CREATE FUNCTION notify_principal_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('tenantry_principals', '*:' || r.id::text);
    ELSIF TG_TABLE_NAME = 'memberships' THEN
        PERFORM pg_notify('tenantry_principals', r.tenant_id::text || ':' || r.user_id::text);
    ELSE
        PERFORM pg_notify('tenantry_principals', r.tenant_id::text || ':client:' || r.client_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_principal AFTER UPDATE OF status OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_principal_change();
CREATE TRIGGER memberships_notify_principal AFTER UPDATE OF status OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION notify_principal_change();
CREATE TRIGGER api_clients_notify_principal AFTER UPDATE OF status OR DELETE ON api_clients
    FOR EACH ROW EXECUTE FUNCTION notify_principal_change();

GRANT DELETE ON memberships TO ${app_role};
